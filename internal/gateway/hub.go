package gateway

import (
	"sort"
	"sync"
)

// hub indexes the online client connections by uniqId and by topic. One
// RWMutex guards the maps and every client's uniqId, session and topics;
// nothing else is locked while it is held except the non-blocking socket
// write of a client (which never waits for the network).
//
// The topic index maps a topic to its member connections, so TopicPublish
// costs O(subscribers), not O(connections).
type hub struct {
	mu     sync.RWMutex
	conns  map[string]*client
	topics map[string]map[*client]struct{}
}

func newHub() *hub {
	return &hub{conns: map[string]*client{}, topics: map[string]map[*client]struct{}{}}
}

// add registers c under its uniqId. It returns the connection that held that
// id before (nil if none); the caller displaces it.
func (h *hub) add(c *client) (displaced *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	displaced = h.conns[c.uniqID]
	if displaced != nil {
		h.unindexLocked(displaced)
	}
	h.conns[c.uniqID] = c
	return displaced
}

// remove drops c from every index, if it is still the holder of its id.
func (h *hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[c.uniqID] == c {
		h.unindexLocked(c)
	}
}

func (h *hub) unindexLocked(c *client) {
	delete(h.conns, c.uniqID)
	for t := range c.topics {
		h.unsubscribeLocked(c, t)
	}
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

func (h *hub) get(uniqID string) *client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.conns[uniqID]
}

// identity returns c's current uniqId and session.
func (h *hub) identity(c *client) (uniqID, session string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return c.uniqID, c.session
}

func (h *hub) subscribeLocked(c *client, topic string) {
	if c.topics == nil {
		c.topics = map[string]struct{}{}
	}
	c.topics[topic] = struct{}{}
	m := h.topics[topic]
	if m == nil {
		m = map[*client]struct{}{}
		h.topics[topic] = m
	}
	m[c] = struct{}{}
}

func (h *hub) unsubscribeLocked(c *client, topic string) {
	delete(c.topics, topic)
	if m := h.topics[topic]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.topics, topic)
		}
	}
}

// subscribe adds topics to uniqID's connection; it returns the connection
// (nil if offline).
func (h *hub) subscribe(uniqID string, topics []string) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[uniqID]
	if c == nil {
		return nil
	}
	for _, t := range topics {
		h.subscribeLocked(c, t)
	}
	return c
}

func (h *hub) unsubscribe(uniqID string, topics []string) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[uniqID]
	if c == nil {
		return nil
	}
	for _, t := range topics {
		h.unsubscribeLocked(c, t)
	}
	return c
}

// deleteTopics removes the topics from every member and returns the
// connections that were members of any of them (each once).
func (h *hub) deleteTopics(topics []string) []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[*client]struct{}{}
	var out []*client
	for _, t := range topics {
		for c := range h.topics[t] {
			delete(c.topics, t)
			if _, ok := seen[c]; !ok {
				seen[c] = struct{}{}
				out = append(out, c)
			}
		}
		delete(h.topics, t)
	}
	return out
}

// members returns the connections subscribed to any of topics, each once.
func (h *hub) members(topics []string) []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(topics) == 1 {
		m := h.topics[topics[0]]
		out := make([]*client, 0, len(m))
		for c := range m {
			out = append(out, c)
		}
		return out
	}
	seen := map[*client]struct{}{}
	var out []*client
	for _, t := range topics {
		for c := range h.topics[t] {
			if _, ok := seen[c]; !ok {
				seen[c] = struct{}{}
				out = append(out, c)
			}
		}
	}
	return out
}

// all returns every online connection.
func (h *hub) all() []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*client, 0, len(h.conns))
	for _, c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) lookup(uniqIDs []string) []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*client, 0, len(uniqIDs))
	for _, id := range uniqIDs {
		if c := h.conns[id]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

func (h *hub) online(uniqIDs []string) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for _, id := range uniqIDs {
		if _, ok := h.conns[id]; ok {
			out = append(out, id)
		}
	}
	return out
}

func (h *hub) uniqIDs() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(h.conns))
	for id := range h.conns {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (h *hub) topicNames() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(h.topics))
	for t := range h.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (h *hub) topicCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}

// topicMembers returns the uniqIds subscribed to each existing topic.
func (h *hub) topicMembers(topics []string) map[string][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[string][]string{}
	for _, t := range topics {
		m, ok := h.topics[t]
		if !ok {
			continue
		}
		ids := make([]string, 0, len(m))
		for c := range m {
			ids = append(ids, c.uniqID)
		}
		sort.Strings(ids)
		out[t] = ids
	}
	return out
}

// topicCounts counts the members of topics (all topics when all is set).
func (h *hub) topicCounts(topics []string, all bool) map[string]int32 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[string]int32{}
	if all {
		for t, m := range h.topics {
			out[t] = int32(len(m))
		}
		return out
	}
	for _, t := range topics {
		if m, ok := h.topics[t]; ok {
			out[t] = int32(len(m))
		}
	}
	return out
}

// info is one connection's session and topics.
type info struct {
	session string
	topics  []string
}

func (h *hub) infos(uniqIDs []string) map[string]info {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[string]info{}
	for _, id := range uniqIDs {
		c := h.conns[id]
		if c == nil {
			continue
		}
		ts := make([]string, 0, len(c.topics))
		for t := range c.topics {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		out[id] = info{session: c.session, topics: ts}
	}
	return out
}

// update applies a ConnInfoUpdate to uniqID's connection. A new uniqId that
// another connection holds displaces that connection (returned, already
// unindexed). newTopics are added to the connection's topics.
func (h *hub) update(uniqID, newUniqID, newSession string, setSession bool, newTopics []string) (c, displaced *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c = h.conns[uniqID]
	if c == nil {
		return nil, nil
	}
	if newUniqID != "" && newUniqID != uniqID {
		if other := h.conns[newUniqID]; other != nil {
			h.unindexLocked(other)
			displaced = other
		}
		delete(h.conns, uniqID)
		c.uniqID = newUniqID
		h.conns[newUniqID] = c
	}
	if setSession {
		c.session = newSession
	}
	for _, t := range newTopics {
		h.subscribeLocked(c, t)
	}
	return c, displaced
}

// clear applies a ConnInfoDelete: it empties the session and/or topics of
// uniqID's connection. Deleting the uniqId is not supported by netsvr
// either in a way a client could observe (it is regenerated), so delUniqId
// gives the connection a fresh id from newID.
func (h *hub) clear(uniqID string, delUniqID, delSession, delTopic bool, newID func() string) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conns[uniqID]
	if c == nil {
		return nil
	}
	if delSession {
		c.session = ""
	}
	if delTopic {
		for t := range c.topics {
			h.unsubscribeLocked(c, t)
		}
	}
	if delUniqID {
		delete(h.conns, uniqID)
		c.uniqID = newID()
		h.conns[c.uniqID] = c
	}
	return c
}

// guests returns the connections among uniqIDs whose session is empty.
func (h *hub) guests(uniqIDs []string) []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*client
	for _, id := range uniqIDs {
		if c := h.conns[id]; c != nil && c.session == "" {
			out = append(out, c)
		}
	}
	return out
}

func (h *hub) isGuest(c *client) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.conns[c.uniqID] == c && c.session == ""
}
