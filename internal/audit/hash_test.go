package audit_test

import (
	"testing"
	"time"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store"
)

func TestHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base := store.AuditRecord{ID: 7, Time: time.UnixMilli(1700000000123), Actor: "operator:bob", Action: "invoke",
		Game: "g", Env: "e", Function: "f", Payload: `{"a":1}`, Result: "OK", DurationMs: 5, RequestID: "r", PrevHash: "p"}
	h := audit.Hash(&base)
	if len(h) != 64 {
		t.Fatalf("hash %q is not hex sha256", h)
	}
	if audit.Hash(&base) != h {
		t.Fatal("hash is not deterministic")
	}
	mutations := map[string]func(r *store.AuditRecord){
		"id":       func(r *store.AuditRecord) { r.ID++ },
		"time":     func(r *store.AuditRecord) { r.Time = r.Time.Add(time.Millisecond) },
		"actor":    func(r *store.AuditRecord) { r.Actor += "x" },
		"action":   func(r *store.AuditRecord) { r.Action += "x" },
		"game":     func(r *store.AuditRecord) { r.Game += "x" },
		"env":      func(r *store.AuditRecord) { r.Env += "x" },
		"function": func(r *store.AuditRecord) { r.Function += "x" },
		"payload":  func(r *store.AuditRecord) { r.Payload = `{"a":2}` },
		"result":   func(r *store.AuditRecord) { r.Result = "INTERNAL" },
		"duration": func(r *store.AuditRecord) { r.DurationMs++ },
		"request":  func(r *store.AuditRecord) { r.RequestID += "x" },
		"prev":     func(r *store.AuditRecord) { r.PrevHash += "x" },
		// Moving bytes between adjacent fields must change the hash too.
		"boundary": func(r *store.AuditRecord) { r.Game, r.Env = "ge", "" },
	}
	for name, mut := range mutations {
		r := base
		mut(&r)
		if audit.Hash(&r) == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	r := base
	r.Hash = "anything"
	if audit.Hash(&r) != h {
		t.Error("the stored hash must not be part of its own input")
	}
}
