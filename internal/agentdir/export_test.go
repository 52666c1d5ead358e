package agentdir

// Synced is how many other members had answered this node's sync at its
// last sweep.
func (d *Dir) Synced() int { return int(d.synced.Load()) }
