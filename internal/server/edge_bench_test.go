package server

import (
	"context"
	"io"
	"net/http"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// BenchmarkEdge measures one cheap read (ListAgents) through the edge over
// gRPC and over REST (HTTP → grpc-gateway → in-process gRPC → edge), so the
// cost of the in-process hop REST takes shows as the difference.
func BenchmarkEdge(b *testing.B) {
	s, conn, _ := testServer(b, nil)
	rc := croupierv1.NewRegistryServiceClient(conn)
	ctx := context.Background()
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			if _, err := rc.ListAgents(ctx, &croupierv1.ListAgentsRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rest", func(b *testing.B) {
		url := "http://" + s.HTTPAddr() + "/api/v1/agents"
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
	})
}
