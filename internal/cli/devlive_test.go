package cli

import (
	"context"
	"log/slog"
	"testing"

	"github.com/croupier/croupier/internal/cluster"
)

// `croupier dev`'s live node id is "dev" with or without the dev server's
// NATS, not the server's cluster id (hostname-pid, new at every start):
// leases name their holder by it and a restarted node takes its own back.
func TestDevLiveNodeIDStable(t *testing.T) {
	if got := devLiveConfig("127.0.0.1:0", nil); got.NodeID != "dev" || got.JetStream != nil {
		t.Fatalf("without a bus: node id %q, JetStream %v; want dev, none", got.NodeID, got.JetStream)
	}
	bus, err := cluster.Start(context.Background(), cluster.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	got := devLiveConfig("127.0.0.1:0", bus)
	if got.NodeID != "dev" {
		t.Fatalf("with the dev server's bus (id %s): live node id %q; want dev", bus.ID(), got.NodeID)
	}
	if got.JetStream == nil {
		t.Fatal("with the dev server's bus: no JetStream for the leases")
	}
}
