package roomcluster

// SetBeforeHeartbeatWrite makes Heartbeat call fn between reading a
// node's entry and writing it back.
func SetBeforeHeartbeatWrite(n *Node, fn func()) { n.beforeBeatWrite.Store(&fn) }

// PresenceRooms is how many rooms the node holds watched counts for.
func PresenceRooms(n *Node) int {
	n.presence.mu.Lock()
	defer n.presence.mu.Unlock()
	return len(n.presence.counts)
}
