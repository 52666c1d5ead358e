package audit_test

import (
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store/storetest"
)

// BenchmarkAppend measures audit appends: "serial" is one caller at a time
// (one transaction each, the latency an unloaded InvokeFunction pays);
// "parallel" is 32 concurrent callers sharing transactions by group commit.
//
//	go test -run '^$' -bench Append -benchmem ./internal/audit/
func BenchmarkAppend(b *testing.B) {
	e := audit.Entry{Actor: "operator:bench", Action: audit.ActionInvoke, Game: "g", Env: "prod", Function: "f",
		Payload: []byte(`{"player":"p1","reason":"x"}`), SensitiveFields: []string{"/reason"}}
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver+"/serial", func(b *testing.B) {
			l, err := audit.New(audit.Config{Store: storetest.Open(b, driver)})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := l.Record(b.Context(), e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(driver+"/parallel", func(b *testing.B) {
			l, err := audit.New(audit.Config{Store: storetest.Open(b, driver)})
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16) // 16 × GOMAXPROCS callers
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Record(b.Context(), e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
