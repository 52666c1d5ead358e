package gateway

import "time"

// DelayUpgrade makes g's WebSocket handler wait d before it upgrades a
// request: a server slow to upgrade. Call it before Start.
func DelayUpgrade(g *Gateway, d time.Duration) { g.beforeUpgrade = func() { time.Sleep(d) } }
