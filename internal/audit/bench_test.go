package audit_test

import (
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store/storetest"
)

// BenchmarkAppend measures serialised audit appends (one transaction each).
func BenchmarkAppend(b *testing.B) {
	for _, driver := range []string{"sqlite", "postgres"} {
		b.Run(driver, func(b *testing.B) {
			l, err := audit.New(audit.Config{Store: storetest.Open(b, driver)})
			if err != nil {
				b.Fatal(err)
			}
			e := audit.Entry{Actor: "operator:bench", Action: audit.ActionInvoke, Game: "g", Env: "prod", Function: "f",
				Payload: []byte(`{"player":"p1","reason":"x"}`), SensitiveFields: []string{"/reason"}}
			for b.Loop() {
				if err := l.Record(b.Context(), e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
