package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

// GrantParams is what operators send to player.grant_item; the server has
// already checked it against the descriptor's JSON Schema.
type GrantParams struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Count    int    `json:"count"`
}

// GrantResult is what the operator gets back.
type GrantResult struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Total    int    `json:"total"`
}

// A typed handler: sdk.Func decodes the payload into GrantParams and encodes
// the *GrantResult as the result object. sdk.Errorf reports a function error
// with a code the operator sees as error_code.
func Example() {
	inventory := map[string]int{"p1": 2}

	c := sdk.New(sdk.Options{InstanceID: "gs-1"}) // agent: $CROUPIER_AGENT_ADDR or 127.0.0.1:19090
	grant := sdk.Func(func(ctx context.Context, inv *sdk.Invocation, p GrantParams) (*GrantResult, error) {
		if _, ok := inventory[p.PlayerID]; !ok {
			return nil, sdk.Errorf("PLAYER_NOT_FOUND", "no player %q", p.PlayerID)
		}
		inventory[p.PlayerID] += p.Count
		return &GrantResult{PlayerID: p.PlayerID, ItemID: p.ItemID, Total: inventory[p.PlayerID]}, nil
	})
	err := c.Register(&croupierv1.FunctionDescriptor{
		Id:   "player.grant_item",
		Name: "Grant item",
		ParamsSchema: sdk.MustSchema(`{
			"type": "object", "additionalProperties": false,
			"required": ["player_id", "item_id", "count"],
			"properties": {
				"player_id": {"type": "string"},
				"item_id":   {"type": "string"},
				"count":     {"type": "integer", "minimum": 1}
			}}`),
		Semantics: &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, TimeoutSeconds: 10},
	}, grant)
	if err != nil {
		log.Fatal(err) // e.g. the schema does not compile: the message says why
	}
	// A game server now calls c.Serve(ctx). Here the handler is called the
	// way the SDK calls it when an operator invokes the function.
	for _, player := range []string{"p1", "p9"} {
		payload, _ := structpb.NewStruct(map[string]any{"player_id": player, "item_id": "sword", "count": 3})
		res, err := grant(context.Background(), &sdk.Invocation{FunctionID: "player.grant_item", Payload: payload})
		var fe *sdk.Error
		switch {
		case errors.As(err, &fe):
			fmt.Println("function error:", fe.Code, fe.Message)
		case err != nil:
			fmt.Println("error:", err)
		default:
			b, _ := json.Marshal(res.AsMap())
			fmt.Println(string(b))
		}
	}
	// Output:
	// {"item_id":"sword","player_id":"p1","total":5}
	// function error: PLAYER_NOT_FOUND no player "p9"
}

// A long-running function reports progress through *sdk.Job and honours
// cancellation through its context. Start it with `croupier job start`.
func ExampleClient_RegisterJob() {
	c := sdk.New(sdk.Options{})
	err := c.RegisterJob(&croupierv1.FunctionDescriptor{
		Id:           "mail.broadcast",
		ParamsSchema: sdk.MustSchema(`{"type":"object","required":["recipients"],"properties":{"recipients":{"type":"array","items":{"type":"string"}}}}`),
		Semantics:    &croupierv1.Semantics{LongRunning: true},
	}, func(ctx context.Context, job *sdk.Job) (*structpb.Struct, error) {
		var p struct {
			Recipients []string `json:"recipients"`
		}
		if err := job.Decode(&p); err != nil {
			return nil, err
		}
		for i, to := range p.Recipients {
			if err := ctx.Err(); err != nil {
				return nil, err // cancelled: the SDK reports CANCELED with the operator's reason
			}
			_ = to // send the mail
			if err := job.Progress(float64(i+1)/float64(len(p.Recipients)), "sent to "+to); err != nil {
				return nil, err
			}
		}
		return sdk.ToStruct(map[string]any{"sent": len(p.Recipients)})
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Serve(ctx); err != nil {
		log.Fatal(err)
	}
}
