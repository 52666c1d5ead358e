// Package demogame is a small game with real state — players with levels,
// coins, inventories and bans — whose GM functions are served through the
// Croupier SDK. `croupier dev` runs it in-process and examples/gameserver
// runs it as a standalone game-server process.
package demogame

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

// Player is one player's state.
type Player struct {
	ID        string         `json:"player_id"`
	Name      string         `json:"name"`
	Level     int            `json:"level"`
	Coins     int64          `json:"coins"`
	Inventory map[string]int `json:"inventory"`
	Banned    bool           `json:"banned"`
	BanReason string         `json:"ban_reason,omitempty"`
	BanUntil  string         `json:"ban_until,omitempty"`
	Mailbox   []Mail         `json:"mailbox,omitempty"`
}

// Limits that keep every player's record small whatever operators send:
// a real game bounds mailboxes and inventories the same way.
const (
	// MaxMailbox is how many mails a mailbox keeps; a new mail pushes out
	// the oldest.
	MaxMailbox = 20
	// MaxInventoryItems is how many distinct items a player may hold.
	MaxInventoryItems = 64
	// MaxItemCount is the most of one item a player may hold.
	MaxItemCount = 1_000_000
)

// Mail is one message in a player's mailbox.
type Mail struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Game holds the players. Safe for concurrent use.
type Game struct {
	instance string
	now      func() time.Time

	mu          sync.Mutex
	players     map[string]*Player
	invocations int64 // calls served, game.stats excluded
}

// New returns a game with players p1..pN.
func New(instance string, players int) *Game {
	g := &Game{instance: instance, now: time.Now, players: make(map[string]*Player, players)}
	for i := 1; i <= players; i++ {
		id := fmt.Sprintf("p%d", i)
		g.players[id] = &Player{ID: id, Name: fmt.Sprintf("Player %d", i), Level: 1 + i%60, Coins: int64(100 * i), Inventory: map[string]int{"potion": 1 + i%3}}
	}
	return g
}

// GetParams is the payload of player.get.
type GetParams struct {
	PlayerID string `json:"player_id"`
}

// BanParams is the payload of player.ban.
type BanParams struct {
	PlayerID        string `json:"player_id"`
	Reason          string `json:"reason"`
	DurationSeconds int64  `json:"duration_seconds"`
}

// GrantParams is the payload of player.grant_item.
type GrantParams struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Count    int    `json:"count"`
}

// Result wraps a player with the instance that served the call.
type Result struct {
	Player   *Player `json:"player"`
	ServedBy string  `json:"served_by"`
}

func (g *Game) player(id string) (*Player, error) {
	p, ok := g.players[id]
	if !ok {
		return nil, sdk.Errorf("PLAYER_NOT_FOUND", "no player %q", id)
	}
	return p, nil
}

func (g *Game) snapshot(p *Player) *Player {
	cp := *p
	cp.Mailbox = append([]Mail(nil), p.Mailbox...)
	cp.Inventory = make(map[string]int, len(p.Inventory))
	for k, v := range p.Inventory {
		cp.Inventory[k] = v
	}
	return &cp
}

// Get returns a player.
func (g *Game) Get(_ context.Context, _ *sdk.Invocation, p GetParams) (*Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pl, err := g.player(p.PlayerID)
	if err != nil {
		return nil, err
	}
	return &Result{Player: g.snapshot(pl), ServedBy: g.instance}, nil
}

// Ban bans a player for a duration (0 = permanently).
func (g *Game) Ban(_ context.Context, _ *sdk.Invocation, p BanParams) (*Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pl, err := g.player(p.PlayerID)
	if err != nil {
		return nil, err
	}
	pl.Banned, pl.BanReason, pl.BanUntil = true, p.Reason, ""
	if p.DurationSeconds > 0 {
		pl.BanUntil = g.now().Add(time.Duration(p.DurationSeconds) * time.Second).UTC().Format(time.RFC3339)
	}
	return &Result{Player: g.snapshot(pl), ServedBy: g.instance}, nil
}

// GrantItem adds items to a player's inventory.
func (g *Game) GrantItem(_ context.Context, _ *sdk.Invocation, p GrantParams) (*Result, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pl, err := g.player(p.PlayerID)
	if err != nil {
		return nil, err
	}
	have, held := pl.Inventory[p.ItemID]
	if !held && len(pl.Inventory) >= MaxInventoryItems {
		return nil, sdk.Errorf("INVENTORY_FULL", "player %s already holds %d kinds of items, the most a player may", p.PlayerID, MaxInventoryItems)
	}
	if have+p.Count > MaxItemCount {
		return nil, sdk.Errorf("ITEM_LIMIT", "player %s holds %d of %s; %d more would pass the limit of %d", p.PlayerID, have, p.ItemID, p.Count, MaxItemCount)
	}
	pl.Inventory[p.ItemID] = have + p.Count
	return &Result{Player: g.snapshot(pl), ServedBy: g.instance}, nil
}

// Players lists player ids (sorted).
func (g *Game) Players() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.players))
	for id := range g.players {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

const playerIDSchema = `"player_id":{"type":"string","maxLength":16,"pattern":"^p[0-9]+$","description":"Player id, e.g. p42"}`

// Descriptors of the demo functions.
var (
	GetDescriptor = &croupierv1.FunctionDescriptor{
		Id: "player.get", Name: "Get player", Category: "player", Version: "1.0.0",
		Description:  "Returns a player's level, coins, inventory and ban state.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["player_id"],"properties":{` + playerIDSchema + `}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"player":{"type":"object"},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_LOW, ReadOnly: true, Idempotent: true, TimeoutSeconds: 5},
		Ui:           &croupierv1.UIConfig{DisplayName: "Get player", Icon: "user"},
	}
	BanDescriptor = &croupierv1.FunctionDescriptor{
		Id: "player.ban", Name: "Ban player", Category: "player", Version: "1.0.0",
		Description: "Bans a player for duration_seconds (0 = permanently).",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["player_id","reason","duration_seconds"],"properties":{` + playerIDSchema +
			`,"reason":{"type":"string","minLength":3,"maxLength":500},"duration_seconds":{"type":"integer","minimum":0,"maximum":31536000}}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"player":{"type":"object"},"served_by":{"type":"string"}}}`),
		Auth:         &croupierv1.AuthConfig{Permissions: []string{"player:ban"}, SensitiveFields: []string{"/reason"}},
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_HIGH, Idempotent: true, TimeoutSeconds: 10},
		Ui:           &croupierv1.UIConfig{DisplayName: "Ban player", Icon: "ban", Confirm: true, ConfirmMessage: "Ban this player?", Widgets: map[string]string{"reason": "textarea"}},
	}
	GrantDescriptor = &croupierv1.FunctionDescriptor{
		Id: "player.grant_item", Name: "Grant item", Category: "economy", Version: "1.0.0",
		Description: "Adds count items of item_id to a player's inventory.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["player_id","item_id","count"],"properties":{` + playerIDSchema +
			`,"item_id":{"type":"string","minLength":1,"maxLength":64,"pattern":"^[a-z0-9_.-]+$"},"count":{"type":"integer","minimum":1,"maximum":10000}}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"player":{"type":"object"},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, TimeoutSeconds: 10},
		Ui:           &croupierv1.UIConfig{DisplayName: "Grant item", Icon: "gift", FieldOrder: []string{"player_id", "item_id", "count"}},
	}
	MailDescriptor = &croupierv1.FunctionDescriptor{
		Id: "mail.broadcast", Name: "Broadcast mail", Category: "mail", Version: "1.0.0",
		Description: "A job: sends a mail to each recipient (\"*\" = every player), reporting progress after each. A mailbox keeps the newest 20 mails.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["subject","body","recipients"],"properties":{` +
			`"subject":{"type":"string","minLength":1,"maxLength":200},"body":{"type":"string","maxLength":2000},` +
			`"recipients":{"type":"array","minItems":1,"maxItems":1000,"uniqueItems":true,"items":{"type":"string","maxLength":16,"pattern":"^(\\*|p[0-9]+)$"}},` +
			`"delay_ms":{"type":"integer","minimum":0,"maximum":60000}}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"sent":{"type":"integer"},"skipped":{"type":"integer"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, LongRunning: true},
		Ui:           &croupierv1.UIConfig{DisplayName: "Broadcast mail", Icon: "mail", Widgets: map[string]string{"body": "textarea"}},
	}
	StatsDescriptor = &croupierv1.FunctionDescriptor{
		Id: "game.stats", Name: "Instance stats", Category: "ops", Version: "1.0.0",
		Description:  "Reports the instance that served the call and how many calls it has served.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_LOW, ReadOnly: true, TimeoutSeconds: 5},
	}
)

// MailParams is the payload of mail.broadcast.
type MailParams struct {
	Subject    string   `json:"subject"`
	Body       string   `json:"body"`
	Recipients []string `json:"recipients"`
	DelayMS    int      `json:"delay_ms"`
}

// MailBroadcast is a job: it delivers a mail to each recipient ("*" means
// every player), reporting progress after each one and stopping when the
// job is cancelled.
func (g *Game) MailBroadcast(ctx context.Context, job *sdk.Job) (*structpb.Struct, error) {
	var p MailParams
	if err := job.Decode(&p); err != nil {
		return nil, sdk.Errorf("BAD_PAYLOAD", "%v", err)
	}
	recipients := p.Recipients
	if slices.Contains(recipients, "*") {
		recipients = g.Players()
	}
	_ = job.Logf("sending %q to %d players", p.Subject, len(recipients))
	sent, missing := 0, 0
	for i, id := range recipients {
		if p.DelayMS > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(p.DelayMS) * time.Millisecond):
			}
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		g.mu.Lock()
		pl, ok := g.players[id]
		if ok {
			pl.Mailbox = deliver(pl.Mailbox, Mail{Subject: p.Subject, Body: p.Body})
			sent++
		} else {
			missing++
		}
		g.mu.Unlock()
		if !ok {
			_ = job.Logf("no player %q; skipped", id)
		}
		if err := job.Progress(float64(i+1)/float64(len(recipients)), fmt.Sprintf("%d/%d delivered to %s", i+1, len(recipients), id)); err != nil {
			return nil, err
		}
	}
	_ = job.Logf("done: %d sent, %d skipped", sent, missing)
	return sdk.ToStruct(map[string]any{"sent": sent, "skipped": missing, "served_by": g.instance})
}

// deliver appends m to box, dropping the oldest mails past MaxMailbox.
func deliver(box []Mail, m Mail) []Mail {
	box = append(box, m)
	if n := len(box) - MaxMailbox; n > 0 {
		box = append(box[:0:0], box[n:]...) // a fresh array: the dropped mails are freed
	}
	return box
}

// Stats is the result of game.stats.
type Stats struct {
	ServedBy    string `json:"served_by"`
	Invocations int64  `json:"invocations"`
	Players     int    `json:"players"`
}

// Stats reports how many calls this instance has served.
func (g *Game) Stats(context.Context, *sdk.Invocation, struct{}) (*Stats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &Stats{ServedBy: g.instance, Invocations: g.invocations, Players: len(g.players)}, nil
}

// counted counts the calls h serves.
func (g *Game) counted(h sdk.Handler) sdk.Handler {
	return func(ctx context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		g.mu.Lock()
		g.invocations++
		g.mu.Unlock()
		return h(ctx, inv)
	}
}

// Register adds the demo functions to c: all of them, or only those named.
func (g *Game) Register(c *sdk.Client, only ...string) error {
	for _, f := range []struct {
		d *croupierv1.FunctionDescriptor
		h sdk.Handler
	}{
		{GetDescriptor, g.counted(sdk.Func(g.Get))},
		{BanDescriptor, g.counted(sdk.Func(g.Ban))},
		{GrantDescriptor, g.counted(sdk.Func(g.GrantItem))},
		{StatsDescriptor, sdk.Func(g.Stats)},
	} {
		if len(only) > 0 && !slices.Contains(only, f.d.GetId()) {
			continue
		}
		if err := c.Register(f.d, f.h); err != nil {
			return err
		}
	}
	if len(only) == 0 || slices.Contains(only, MailDescriptor.GetId()) {
		return c.RegisterJob(MailDescriptor, g.MailBroadcast)
	}
	return nil
}
