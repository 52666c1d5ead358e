package filter

func (n *andNode) match(s *Session) bool {
	for _, t := range n.terms {
		if !t.match(s) {
			return false
		}
	}
	return true
}

func (n *orNode) match(s *Session) bool {
	for _, t := range n.terms {
		if t.match(s) {
			return true
		}
	}
	return false
}

// match relies on check: every comparison reaching here is well typed.
func (n *cmpNode) match(s *Session) bool {
	switch n.attr {
	case attrName:
		return n.op.holds(compareEq(s.Name, n.val.str))
	case attrID:
		return n.op.holds(compareEq(s.ID, n.val.str))
	case attrMaxSessions:
		return n.op.holds(intNumber(int64(s.MaxPlayers)).compare(n.val.num))
	case attrCreationTime:
		return n.op.holds(intNumber(s.CreationTimeMillis).compare(n.val.num))
	case attrPlayerCount:
		return n.op.holds(intNumber(int64(s.PlayerCount)).compare(n.val.num))
	case attrHasAvailable:
		return n.op.holds(compareEq(s.HasAvailable, n.val.b))
	case attrProperty:
		// A missing property matches nothing, <> included, as NULL does in
		// SQL: "mode <> 'ranked'" should not select sessions without a mode.
		v, ok := s.Properties[n.key]
		if !ok {
			return false
		}
		if n.val.kind == kindNumber {
			num, ok := parseNumber(v)
			return ok && n.op.holds(num.compare(n.val.num))
		}
		return n.op.holds(compareEq(v, n.val.str))
	}
	return false
}

// compareEq returns 0 for equal values and 1 otherwise; used only with = and <>.
func compareEq[T comparable](a, b T) int {
	if a == b {
		return 0
	}
	return 1
}
