package gateway_test

import (
	"slices"
	"testing"

	"github.com/croupier/croupier/api/netsvr"
)

// An operator's kick that names a connection twice sends it the reason
// once and reports it once. Before the fix the reason was written twice and
// the id listed twice.
func TestKickNamesEachConnectionOnce(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	c, id := openClient(t, g, b)
	if kicked := g.Kick([]string{id, "nobody", id}, []byte("bye")); !slices.Equal(kicked, []string{id}) {
		t.Errorf("kicked %q, want [%s]", kicked, id)
	}
	// The close comes forceOfflineDelay (3 s) after the reason.
	if got := c.messagesUntilClose(); !slices.Equal(got, []string{"bye"}) {
		t.Errorf("client got %q before the close, want [bye]", got)
	}
}

// TestForceOfflineNamesEachConnectionOnce: a business's ForceOffline
// naming a connection twice sends it the data once, as Kick does (the
// same path).
func TestForceOfflineNamesEachConnectionOnce(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	c, id := openClient(t, g, b)
	b.send(netsvr.Cmd_ForceOffline, &netsvr.ForceOffline{UniqIds: []string{id, id}, Data: []byte("bye")})
	if got := c.messagesUntilClose(); !slices.Equal(got, []string{"bye"}) {
		t.Errorf("client got %q before the close, want [bye]", got)
	}
}

// messagesUntilClose reads the client's messages until the server closes.
func (c *wsc) messagesUntilClose() []string {
	var got []string
	for {
		op, p := c.readMessage()
		if op == opClose {
			return got
		}
		got = append(got, string(p))
	}
}
