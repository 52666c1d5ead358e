package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestOversizedPayloadKeepsNamedFields (issue 9, defect 8): a payload over
// the cap keeps its field names and the start of every value, marked
// truncated, instead of losing everything; masking still applies first.
func TestOversizedPayloadKeepsNamedFields(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	l, err := audit.New(audit.Config{Store: s}) // the default 64 KiB cap
	if err != nil {
		t.Fatal(err)
	}
	recipients := make([]any, 5000)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("player-%d", i)
	}
	pl, err := structpb.NewStruct(map[string]any{
		"subject":    "Server maintenance",
		"body":       strings.Repeat("All servers restart at 04:00 UTC. ", 4000),
		"recipients": recipients,
		"password":   strings.Repeat("s", 100000),
		"count":      3,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.Append(context.Background(), audit.Entry{Actor: "operator:bob", Action: audit.ActionInvoke,
		Game: "demo", Env: "dev", Function: "mail.broadcast", Payload: pl, SensitiveFields: []string{"/password"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Payload) > 64<<10 {
		t.Fatalf("stored payload is %d bytes, over the 64 KiB cap", len(rec.Payload))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.Payload), &got); err != nil {
		t.Fatalf("stored payload is not JSON: %v", err)
	}
	if got["_truncated"] != true || got["_bytes"] == nil {
		t.Fatalf("payload not marked truncated: %.200s", rec.Payload)
	}
	if got["subject"] != "Server maintenance" || got["count"] != 3.0 || got["password"] != audit.Masked {
		t.Fatalf("short fields lost or sensitive field unmasked: subject=%v count=%v password=%v", got["subject"], got["count"], got["password"])
	}
	if b, _ := got["body"].(string); !strings.HasPrefix(b, "All servers restart at 04:00 UTC.") || !strings.Contains(b, "bytes)") {
		t.Fatalf("body = %.100q; want its start and how much was cut", b)
	}
	if r, _ := got["recipients"].([]any); len(r) == 0 || r[0] != "player-0" || !strings.Contains(fmt.Sprint(r[len(r)-1]), "more") {
		t.Fatalf("recipients = %.200v; want the first ones and how many more", got["recipients"])
	}
}

// TestTruncateBounds: whatever the shape — many fields, deep nesting, long
// keys — the result is valid JSON within the cap.
func TestTruncateBounds(t *testing.T) {
	t.Parallel()
	many := map[string]any{}
	for i := range 5000 {
		many[fmt.Sprintf("field-%05d", i)] = i
	}
	deep := any("leaf")
	for range 500 {
		deep = map[string]any{"n": deep, "pad": strings.Repeat("p", 200)}
	}
	for name, v := range map[string]any{
		"many fields": many,
		"deep":        deep,
		"long key":    map[string]any{strings.Repeat("k", 200000): 1},
		"array":       []any{strings.Repeat("a", 100000), 2, 3},
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, max := range []int{256, 4096, 64 << 10} {
			out := audit.Truncate(raw, max)
			if len(out) > max || !json.Valid(out) || !strings.Contains(string(out), `"_truncated":true`) {
				t.Errorf("%s, cap %d: %d bytes, valid %v: %.120s", name, max, len(out), json.Valid(out), out)
			}
		}
	}
}
