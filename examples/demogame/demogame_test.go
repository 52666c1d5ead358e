package demogame

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/schema"
)

// TestMailSchemaBoundsPayload (issue 9, defect 8): the mail job's schema
// refuses what would bloat every player's record — a 9 MB body, 100,000
// recipients — and accepts a normal mail.
func TestMailSchemaBoundsPayload(t *testing.T) {
	t.Parallel()
	sch, err := schema.Compile(MailDescriptor.GetParamsSchema())
	if err != nil {
		t.Fatal(err)
	}
	many := make([]any, 100000)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i+1)
	}
	for name, payload := range map[string]map[string]any{
		"9 MB body":         {"subject": "s", "body": strings.Repeat("x", 9<<20), "recipients": []any{"*"}},
		"100000 recipients": {"subject": "s", "body": "b", "recipients": many},
		"long recipient":    {"subject": "s", "body": "b", "recipients": []any{"p" + strings.Repeat("1", 100)}},
		"duplicate":         {"subject": "s", "body": "b", "recipients": []any{"p1", "p1"}},
		"long subject":      {"subject": strings.Repeat("s", 201), "body": "b", "recipients": []any{"p1"}},
		"unknown property":  {"subject": "s", "body": "b", "recipients": []any{"p1"}, "attachment": "x"},
		"negative delay":    {"subject": "s", "body": "b", "recipients": []any{"p1"}, "delay_ms": -1},
		"2001-byte body":    {"subject": "s", "body": strings.Repeat("x", 2001), "recipients": []any{"p1"}},
	} {
		if verr := sch.Validate(payload); verr == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := map[string]any{"subject": "Maintenance", "body": strings.Repeat("x", 2000), "recipients": []any{"*"}}
	if verr := sch.Validate(ok); verr != nil {
		t.Fatalf("a normal mail is refused: %v", verr)
	}
	grant, err := schema.Compile(GrantDescriptor.GetParamsSchema())
	if err != nil {
		t.Fatal(err)
	}
	if verr := grant.Validate(map[string]any{"player_id": "p1", "item_id": "a b", "count": 1}); verr == nil {
		t.Error("grant: an item id with a space is accepted")
	}
	if verr := grant.Validate(map[string]any{"player_id": "p1", "item_id": "sword", "count": 1}); verr != nil {
		t.Errorf("grant: a sword is refused: %v", verr)
	}
}

// TestMailboxKeepsNewest: however many mails arrive, a mailbox holds the
// newest MaxMailbox, so a player's record stays small.
func TestMailboxKeepsNewest(t *testing.T) {
	t.Parallel()
	var box []Mail
	for i := range 1000 {
		box = deliver(box, Mail{Subject: fmt.Sprint(i), Body: strings.Repeat("x", 2000)})
	}
	if len(box) != MaxMailbox || box[0].Subject != fmt.Sprint(1000-MaxMailbox) || box[len(box)-1].Subject != "999" {
		t.Fatalf("mailbox holds %d mails, first %q last %q; want the newest %d", len(box), box[0].Subject, box[len(box)-1].Subject, MaxMailbox)
	}
	if b, _ := json.Marshal(box); len(b) > 64<<10 {
		t.Fatalf("a full mailbox encodes to %d bytes", len(b))
	}
}

// TestInventoryBounded: a player holds at most MaxInventoryItems kinds of
// items and MaxItemCount of each; grants past that are refused.
func TestInventoryBounded(t *testing.T) {
	t.Parallel()
	g := New("i1", 1)
	ctx := context.Background()
	var err error
	for i := 0; err == nil && i < 2*MaxInventoryItems; i++ {
		_, err = g.GrantItem(ctx, nil, GrantParams{PlayerID: "p1", ItemID: fmt.Sprintf("item-%d", i), Count: 1})
	}
	if err == nil || !strings.Contains(err.Error(), "INVENTORY_FULL") {
		t.Fatalf("granting %d kinds of items: %v, want INVENTORY_FULL", 2*MaxInventoryItems, err)
	}
	res, err := g.Get(ctx, nil, GetParams{PlayerID: "p1"})
	if err != nil || len(res.Player.Inventory) != MaxInventoryItems {
		t.Fatalf("inventory holds %d kinds, want %d (%v)", len(res.Player.Inventory), MaxInventoryItems, err)
	}
	// "potion" is held already, so only the count limit applies.
	err = nil
	for i := 0; err == nil && i <= MaxItemCount/10000; i++ {
		_, err = g.GrantItem(ctx, nil, GrantParams{PlayerID: "p1", ItemID: "potion", Count: 10000})
	}
	if res, _ := g.Get(ctx, nil, GetParams{PlayerID: "p1"}); res.Player.Inventory["potion"] > MaxItemCount {
		t.Fatalf("potion count %d passed the limit", res.Player.Inventory["potion"])
	}
	if err == nil || !strings.Contains(err.Error(), "ITEM_LIMIT") {
		t.Fatalf("granting past the count limit: %v, want ITEM_LIMIT", err)
	}
}
