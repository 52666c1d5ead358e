package gateway_test

import (
	"slices"
	"testing"
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
	// Everything the client gets until the close, which comes
	// forceOfflineDelay (3 s) after the reason.
	var got []string
	for {
		op, p := c.readMessage()
		if op == opClose {
			break
		}
		got = append(got, string(p))
	}
	if !slices.Equal(got, []string{"bye"}) {
		t.Errorf("client got %q before the close, want [bye]", got)
	}
}
