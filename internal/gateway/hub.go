package gateway

import (
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
)

// hubShards is the number of shards of each index. A broadcast snapshot
// holds one shard's read lock at a time, so a connect, a rename or a
// subscription waits for at most 1/hubShards of a snapshot instead of all
// of it, and writers of different shards do not wait for each other.
const hubShards = 64

// hub indexes the online client connections by uniqId and by topic, each
// index split into hubShards shards by a hash of the key. The topic index
// maps a topic to its member connections, so TopicPublish costs
// O(subscribers), not O(connections).
//
// Locks and their order (a goroutine takes them only in this order):
//
//  1. uniqId shards (connShard.mu); two at once only to rename, in
//     ascending shard order;
//  2. one client's mu (uniqID, session, topics);
//  3. one topic shard (topicShard.mu) at a time.
//
// Invariant: conns[id] == c exactly when c is indexed and c.uniqID == id,
// and c.uniqID changes only with the shards of its old and new id held, so
// holding id's shard pins whether c is indexed under id. Nothing else is
// locked meanwhile except the non-blocking socket write of a client (which
// never waits for the network).
type hub struct {
	seed    maphash.Seed
	indexed atomic.Int64 // connections in conns
	conns   [hubShards]connShard
	topics  [hubShards]topicShard
}

type connShard struct {
	mu sync.RWMutex
	m  map[string]*client
}

type topicShard struct {
	mu sync.RWMutex
	m  map[string]map[*client]struct{}
}

func newHub() *hub {
	h := &hub{seed: maphash.MakeSeed()}
	for i := range h.conns {
		h.conns[i].m = map[string]*client{}
		h.topics[i].m = map[string]map[*client]struct{}{}
	}
	return h
}

func (h *hub) shardOf(key string) int { return int(maphash.String(h.seed, key) % hubShards) }

func (h *hub) connShard(uniqID string) *connShard { return &h.conns[h.shardOf(uniqID)] }

func (h *hub) topicShard(topic string) *topicShard { return &h.topics[h.shardOf(topic)] }

// id is c's current uniqId.
func (c *client) id() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uniqID
}

// add registers c under its uniqId. It returns the connection that held that
// id before (nil if none), already unindexed; the caller displaces it.
func (h *hub) add(c *client) (displaced *client) {
	s := h.connShard(c.uniqID)
	s.mu.Lock()
	defer s.mu.Unlock()
	displaced = s.m[c.uniqID]
	if displaced != nil {
		h.untopicAll(displaced)
	} else {
		h.indexed.Add(1)
	}
	s.m[c.uniqID] = c
	return displaced
}

// remove drops c from every index, if it is still indexed.
func (h *hub) remove(c *client) {
	for {
		id := c.id()
		s := h.connShard(id)
		s.mu.Lock()
		if s.m[id] == c {
			delete(s.m, id)
			h.indexed.Add(-1)
			h.untopicAll(c)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if c.id() == id {
			return // not indexed (displaced, or removed already)
		}
		// Renamed meanwhile: look again under the new id.
	}
}

// untopicAll removes c from all its topics. The caller holds c's uniqId
// shard.
func (h *hub) untopicAll(c *client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for t := range c.topics {
		h.untopicLocked(c, t)
	}
}

// topicLocked and untopicLocked change one membership; the caller holds
// c.mu.
func (h *hub) topicLocked(c *client, topic string) {
	if c.topics == nil {
		c.topics = map[string]struct{}{}
	}
	c.topics[topic] = struct{}{}
	ts := h.topicShard(topic)
	ts.mu.Lock()
	m := ts.m[topic]
	if m == nil {
		m = map[*client]struct{}{}
		ts.m[topic] = m
	}
	m[c] = struct{}{}
	ts.mu.Unlock()
}

func (h *hub) untopicLocked(c *client, topic string) {
	delete(c.topics, topic)
	ts := h.topicShard(topic)
	ts.mu.Lock()
	if m := ts.m[topic]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(ts.m, topic)
		}
	}
	ts.mu.Unlock()
}

func (h *hub) count() int { return int(h.indexed.Load()) }

func (h *hub) get(uniqID string) *client {
	s := h.connShard(uniqID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[uniqID]
}

// identity returns c's current uniqId and session.
func (h *hub) identity(c *client) (uniqID, session string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uniqID, c.session
}

// withConn runs fn with uniqID's connection (nil if offline) while its
// shard is read-locked, so the connection cannot be removed meanwhile.
func (h *hub) withConn(uniqID string, fn func(c *client)) {
	s := h.connShard(uniqID)
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.m[uniqID])
}

// subscribe adds topics to uniqID's connection; it returns the connection
// (nil if offline).
func (h *hub) subscribe(uniqID string, topics []string) (c *client) {
	h.withConn(uniqID, func(x *client) {
		if c = x; c == nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, t := range topics {
			h.topicLocked(c, t)
		}
	})
	return c
}

func (h *hub) unsubscribe(uniqID string, topics []string) (c *client) {
	h.withConn(uniqID, func(x *client) {
		if c = x; c == nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, t := range topics {
			h.untopicLocked(c, t)
		}
	})
	return c
}

// deleteTopics removes the topics from every member and returns the
// connections that were members of any of them (each once).
func (h *hub) deleteTopics(topics []string) []*client {
	seen := map[*client]struct{}{}
	var out []*client
	for _, t := range topics {
		ts := h.topicShard(t)
		ts.mu.Lock()
		members := ts.m[t]
		delete(ts.m, t)
		ts.mu.Unlock()
		for c := range members {
			// The lock order puts c.mu first: drop t from c's own set
			// now, unless c subscribed to t again meanwhile.
			c.mu.Lock()
			ts.mu.RLock()
			_, again := ts.m[t][c]
			ts.mu.RUnlock()
			if !again {
				delete(c.topics, t)
			}
			c.mu.Unlock()
			if _, ok := seen[c]; !ok {
				seen[c] = struct{}{}
				out = append(out, c)
			}
		}
	}
	return out
}

// members returns the connections subscribed to any of topics, each once.
func (h *hub) members(topics []string) []*client {
	if len(topics) == 1 {
		ts := h.topicShard(topics[0])
		ts.mu.RLock()
		defer ts.mu.RUnlock()
		m := ts.m[topics[0]]
		out := make([]*client, 0, len(m))
		for c := range m {
			out = append(out, c)
		}
		return out
	}
	seen := map[*client]struct{}{}
	var out []*client
	for _, t := range topics {
		ts := h.topicShard(t)
		ts.mu.RLock()
		for c := range ts.m[t] {
			if _, ok := seen[c]; !ok {
				seen[c] = struct{}{}
				out = append(out, c)
			}
		}
		ts.mu.RUnlock()
	}
	return out
}

// all returns every online connection.
func (h *hub) all() []*client {
	out := make([]*client, 0, h.count()+16)
	for i := range h.conns {
		s := &h.conns[i]
		s.mu.RLock()
		for _, c := range s.m {
			out = append(out, c)
		}
		s.mu.RUnlock()
	}
	return out
}

func (h *hub) lookup(uniqIDs []string) []*client {
	out := make([]*client, 0, len(uniqIDs))
	for _, id := range uniqIDs {
		if c := h.get(id); c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (h *hub) online(uniqIDs []string) []string {
	var out []string
	for _, id := range uniqIDs {
		if h.get(id) != nil {
			out = append(out, id)
		}
	}
	return out
}

func (h *hub) uniqIDs() []string {
	out := make([]string, 0, h.count()+16)
	for i := range h.conns {
		s := &h.conns[i]
		s.mu.RLock()
		for id := range s.m {
			out = append(out, id)
		}
		s.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

func (h *hub) topicNames() []string {
	var out []string
	for i := range h.topics {
		ts := &h.topics[i]
		ts.mu.RLock()
		for t := range ts.m {
			out = append(out, t)
		}
		ts.mu.RUnlock()
	}
	sort.Strings(out)
	return out
}

func (h *hub) topicCount() int {
	n := 0
	for i := range h.topics {
		ts := &h.topics[i]
		ts.mu.RLock()
		n += len(ts.m)
		ts.mu.RUnlock()
	}
	return n
}

// topicMembers returns the uniqIds subscribed to each existing topic.
func (h *hub) topicMembers(topics []string) map[string][]string {
	out := map[string][]string{}
	for _, t := range topics {
		ts := h.topicShard(t)
		ts.mu.RLock()
		m, ok := ts.m[t]
		cs := make([]*client, 0, len(m))
		for c := range m {
			cs = append(cs, c)
		}
		ts.mu.RUnlock()
		if !ok {
			continue
		}
		ids := make([]string, 0, len(cs))
		for _, c := range cs { // c.mu comes before a topic shard: read ids after
			ids = append(ids, c.id())
		}
		sort.Strings(ids)
		out[t] = ids
	}
	return out
}

// topicCounts counts the members of topics (all topics when all is set).
func (h *hub) topicCounts(topics []string, all bool) map[string]int32 {
	out := map[string]int32{}
	if all {
		for i := range h.topics {
			ts := &h.topics[i]
			ts.mu.RLock()
			for t, m := range ts.m {
				out[t] = int32(len(m))
			}
			ts.mu.RUnlock()
		}
		return out
	}
	for _, t := range topics {
		ts := h.topicShard(t)
		ts.mu.RLock()
		if m, ok := ts.m[t]; ok {
			out[t] = int32(len(m))
		}
		ts.mu.RUnlock()
	}
	return out
}

// info is one connection's session and topics.
type info struct {
	session string
	topics  []string
}

func (h *hub) infos(uniqIDs []string) map[string]info {
	out := map[string]info{}
	for _, id := range uniqIDs {
		h.withConn(id, func(c *client) {
			if c == nil {
				return
			}
			c.mu.Lock()
			ts := make([]string, 0, len(c.topics))
			for t := range c.topics {
				ts = append(ts, t)
			}
			in := info{session: c.session, topics: ts}
			c.mu.Unlock()
			sort.Strings(in.topics)
			out[id] = in
		})
	}
	return out
}

// lockPair write-locks the shards of two uniqIds in ascending order and
// returns the unlock.
func (h *hub) lockPair(a, b string) (sa, sb *connShard, unlock func()) {
	ia, ib := h.shardOf(a), h.shardOf(b)
	sa, sb = &h.conns[ia], &h.conns[ib]
	switch {
	case ia == ib:
		sa.mu.Lock()
		return sa, sb, sa.mu.Unlock
	case ia < ib:
		sa.mu.Lock()
		sb.mu.Lock()
	default:
		sb.mu.Lock()
		sa.mu.Lock()
	}
	return sa, sb, func() { sa.mu.Unlock(); sb.mu.Unlock() }
}

// rename moves c (indexed under from, whose shard sf is held with st's)
// to the id to.
func (h *hub) renameLocked(c *client, from, to string, sf, st *connShard) {
	delete(sf.m, from)
	c.mu.Lock()
	c.uniqID = to
	c.mu.Unlock()
	st.m[to] = c
}

// update applies a ConnInfoUpdate to uniqID's connection. A new uniqId that
// another connection holds displaces that connection (returned, already
// unindexed). newTopics are added to the connection's topics.
func (h *hub) update(uniqID, newUniqID, newSession string, setSession bool, newTopics []string) (c, displaced *client) {
	if newUniqID == "" || newUniqID == uniqID {
		newUniqID = uniqID
	}
	sf, st, unlock := h.lockPair(uniqID, newUniqID)
	defer unlock()
	c = sf.m[uniqID]
	if c == nil {
		return nil, nil
	}
	if newUniqID != uniqID {
		if other := st.m[newUniqID]; other != nil {
			delete(st.m, newUniqID)
			h.indexed.Add(-1)
			h.untopicAll(other)
			displaced = other
		}
		h.renameLocked(c, uniqID, newUniqID, sf, st)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if setSession {
		c.session = newSession
	}
	for _, t := range newTopics {
		h.topicLocked(c, t)
	}
	return c, displaced
}

// clear applies a ConnInfoDelete: it empties the session and/or topics of
// uniqID's connection. Deleting the uniqId is not supported by netsvr
// either in a way a client could observe (it is regenerated), so delUniqId
// gives the connection a fresh id from newID.
func (h *hub) clear(uniqID string, delUniqID, delSession, delTopic bool, newID func() string) *client {
	fresh := uniqID
	if delUniqID {
		fresh = newID()
	}
	sf, st, unlock := h.lockPair(uniqID, fresh)
	defer unlock()
	c := sf.m[uniqID]
	if c == nil {
		return nil
	}
	c.mu.Lock()
	if delSession {
		c.session = ""
	}
	if delTopic {
		for t := range c.topics {
			h.untopicLocked(c, t)
		}
	}
	c.mu.Unlock()
	if fresh != uniqID {
		h.renameLocked(c, uniqID, fresh, sf, st)
	}
	return c
}

// guests returns the connections among uniqIDs whose session is empty.
func (h *hub) guests(uniqIDs []string) []*client {
	var out []*client
	for _, id := range uniqIDs {
		h.withConn(id, func(c *client) {
			if c == nil {
				return
			}
			c.mu.Lock()
			guest := c.session == ""
			c.mu.Unlock()
			if guest {
				out = append(out, c)
			}
		})
	}
	return out
}

// isGuest reports whether c is still online with an empty session.
func (h *hub) isGuest(c *client) bool {
	for {
		id := c.id()
		indexed, guest := false, false
		h.withConn(id, func(x *client) {
			if x == c {
				indexed = true
				c.mu.Lock()
				guest = c.session == ""
				c.mu.Unlock()
			}
		})
		if indexed || c.id() == id {
			return guest
		}
	}
}
