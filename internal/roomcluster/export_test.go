package roomcluster

// SetBeforeHeartbeatWrite makes Heartbeat call fn between reading a
// node's entry and writing it back.
func SetBeforeHeartbeatWrite(n *Node, fn func()) { n.beforeBeatWrite.Store(&fn) }
