package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Masked replaces every sensitive value.
const Masked = "***"

// Mask returns the JSON document payload with the value at each JSON pointer
// (RFC 6901, e.g. "/reason" or "/card/number") replaced by "***". A pointer
// token "*" (an extension) stands for every member or element at that level,
// so "/players/*/token" masks the token of every player. Pointers that match
// nothing are ignored. It fails safe: a malformed pointer, or the empty
// pointer "", masks the whole document, and a payload that is not JSON is
// replaced by "***" altogether.
func Mask(payload []byte, pointers []string) []byte {
	if len(pointers) == 0 {
		return payload
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber() // keep numbers exactly as sent
	if err := dec.Decode(&doc); err != nil || dec.More() {
		return []byte(strconv.Quote(Masked))
	}
	for _, p := range pointers {
		tokens, ok := parsePointer(p)
		if !ok || len(tokens) == 0 {
			return []byte(strconv.Quote(Masked))
		}
		doc = maskAt(doc, tokens)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return []byte(strconv.Quote(Masked))
	}
	return out
}

// parsePointer splits an RFC 6901 pointer into unescaped tokens.
func parsePointer(p string) ([]string, bool) {
	if p == "" {
		return nil, true
	}
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	raw := strings.Split(p[1:], "/")
	for i, t := range raw {
		// ~ must be followed by 0 or 1.
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 >= len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, false
			}
		}
		raw[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return raw, true
}

func maskAt(node any, tokens []string) any {
	if len(tokens) == 0 {
		return Masked
	}
	tok, rest := tokens[0], tokens[1:]
	switch n := node.(type) {
	case map[string]any:
		if tok == "*" {
			for k, v := range n {
				n[k] = maskAt(v, rest)
			}
			return n
		}
		if v, ok := n[tok]; ok {
			n[tok] = maskAt(v, rest)
		}
	case []any:
		if tok == "*" {
			for i, v := range n {
				n[i] = maskAt(v, rest)
			}
			return n
		}
		if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n) && strconv.Itoa(i) == tok {
			n[i] = maskAt(n[i], rest)
		}
	}
	return node
}
