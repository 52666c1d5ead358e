package audit_test

import (
	"path/filepath"
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BenchmarkAppend measures audit Records: "serial" is one caller at a time
// (the latency an unloaded InvokeFunction pays); "parallel" is 16 ×
// GOMAXPROCS concurrent callers. In "sqlite" and "postgres" (no journal)
// every Record is a transaction, shared by concurrent callers through group
// commit; "sqlite+journal" is the server's mode: Record writes the journal
// file and returns, the flusher stores batches, and the timed part ends with
// a Sync so the batches' transactions are paid for in the figure.
//
//	go test -run '^$' -bench Append -benchmem ./internal/audit/
func BenchmarkAppend(b *testing.B) {
	e := audit.Entry{Actor: "operator:bench", Action: audit.ActionInvoke, Game: "g", Env: "prod", Function: "f",
		Payload: []byte(`{"player":"p1","reason":"x"}`), SensitiveFields: []string{"/reason"}}
	for _, mode := range []string{"sqlite", "postgres", "sqlite+journal"} {
		open := func(b *testing.B) *audit.Log {
			cfg := audit.Config{}
			if mode == "sqlite+journal" {
				cfg.Store = storetest.SQLite(b)
				cfg.JournalPath = filepath.Join(b.TempDir(), "audit.journal")
			} else {
				cfg.Store = storetest.Open(b, mode)
			}
			l, err := audit.Open(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = l.Close() })
			return l
		}
		b.Run(mode+"/serial", func(b *testing.B) {
			l := open(b)
			b.ResetTimer()
			for range b.N {
				if err := l.Record(b.Context(), e); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
		})
		b.Run(mode+"/parallel", func(b *testing.B) {
			l := open(b)
			b.ResetTimer()
			b.SetParallelism(16) // 16 × GOMAXPROCS callers
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					err := l.Record(b.Context(), e)
					if status.Code(err) == codes.Unavailable {
						// The journal is ahead of the store by its limit
						// (sqlite+journal: callers outrun the flusher):
						// wait for the store, as the rate the store keeps
						// is what this measures, and record again.
						if err = l.Sync(b.Context()); err == nil {
							err = l.Record(b.Context(), e)
						}
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := l.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
		})
	}
}
