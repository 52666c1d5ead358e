// Package gatewayops makes a player gateway node part of Croupier: it serves
// the gateway's built-in functions (gateway.stats, gateway.online,
// gateway.broadcast, gateway.publish, gateway.kick) through the Go SDK, so
// they are registered by the node's agent and invoked, permission-checked
// and audited like any game function, with every routing mode (broadcast
// reaches every gateway node).
package gatewayops

import (
	"context"
	"unicode/utf8"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/sdk"
)

// Gateway is what the functions need of a gateway.
type Gateway interface {
	ServerID() int
	Stats() gateway.Stats
	Online(uniqIDs []string) []string
	Broadcast(data []byte) int
	Publish(topics []string, data []byte) int
	Kick(uniqIDs []string, data []byte) []string
}

// Limits of the functions' parameters, checked by their schemas before a
// call reaches the gateway. Lengths of strings are in characters (Unicode
// code points), as JSON Schema's minLength and maxLength count them, so the
// handlers' own checks (textLen) agree with the schemas.
const (
	maxUniqIDs  = 1000
	maxUniqID   = 128
	maxTopics   = 100
	maxTopic    = 128
	maxData     = 64 << 10
	maxReason   = 1024
	uniqIDsJSON = `"uniq_ids":{"type":"array","minItems":1,"maxItems":1000,"items":{"type":"string","minLength":1,"maxLength":128},"description":"uniqIds of player connections"}`
	dataJSON    = `"data":{"type":"string","minLength":1,"maxLength":65536,"description":"message sent to the clients as one WebSocket message"}`
)

// Descriptors of the built-in functions.
var (
	StatsDescriptor = &croupierv1.FunctionDescriptor{
		Id: "gateway.stats", Name: "Gateway stats", Category: "gateway", Version: "1.0.0",
		Description:  "Online connections, topics, registered businesses and the Metrics items of a player gateway node.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"properties":{}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"server_id":{"type":"integer"},"online":{"type":"integer"},"topics":{"type":"integer"},"businesses":{"type":"integer"},"metrics":{"type":"object"},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_LOW, ReadOnly: true, Idempotent: true, TimeoutSeconds: 5},
		Ui:           &croupierv1.UIConfig{DisplayName: "Gateway stats", Icon: "dashboard"},
	}
	OnlineDescriptor = &croupierv1.FunctionDescriptor{
		Id: "gateway.online", Name: "Check online", Category: "gateway", Version: "1.0.0",
		Description:  "Which of the given uniqIds are connected to the gateway node.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["uniq_ids"],"properties":{` + uniqIDsJSON + `}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"server_id":{"type":"integer"},"online":{"type":"array","items":{"type":"string"}},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_LOW, ReadOnly: true, Idempotent: true, TimeoutSeconds: 5},
		Ui:           &croupierv1.UIConfig{DisplayName: "Check online", Icon: "search"},
	}
	BroadcastDescriptor = &croupierv1.FunctionDescriptor{
		Id: "gateway.broadcast", Name: "Broadcast to players", Category: "gateway", Version: "1.0.0",
		Description:  "Sends data to every client connected to the gateway node.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["data"],"properties":{` + dataJSON + `}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"server_id":{"type":"integer"},"recipients":{"type":"integer"},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, TimeoutSeconds: 10},
		Ui:           &croupierv1.UIConfig{DisplayName: "Broadcast", Icon: "notification", Confirm: true, ConfirmMessage: "Send this to every connected player?", Widgets: map[string]string{"data": "textarea"}},
	}
	PublishDescriptor = &croupierv1.FunctionDescriptor{
		Id: "gateway.publish", Name: "Publish to topics", Category: "gateway", Version: "1.0.0",
		Description: "Sends data to the clients subscribed to any of the topics (each client once).",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["topics","data"],"properties":{` +
			`"topics":{"type":"array","minItems":1,"maxItems":100,"items":{"type":"string","minLength":1,"maxLength":128}},` + dataJSON + `}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"server_id":{"type":"integer"},"recipients":{"type":"integer"},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, TimeoutSeconds: 10},
		Ui:           &croupierv1.UIConfig{DisplayName: "Publish", Icon: "notification", Widgets: map[string]string{"data": "textarea"}},
	}
	KickDescriptor = &croupierv1.FunctionDescriptor{
		Id: "gateway.kick", Name: "Kick players", Category: "gateway", Version: "1.0.0",
		Description: "Forces connections offline (ForceOffline): the reason is sent to each client, which is closed 3 s later.",
		ParamsSchema: sdk.MustSchema(`{"type":"object","additionalProperties":false,"required":["uniq_ids","reason"],"properties":{` + uniqIDsJSON +
			`,"reason":{"type":"string","minLength":1,"maxLength":1024,"description":"sent to the client before it is closed"}}}`),
		ResultSchema: sdk.MustSchema(`{"type":"object","properties":{"server_id":{"type":"integer"},"kicked":{"type":"array","items":{"type":"string"}},"served_by":{"type":"string"}}}`),
		Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_MEDIUM, TimeoutSeconds: 10},
		Ui:           &croupierv1.UIConfig{DisplayName: "Kick", Icon: "logout", Confirm: true, ConfirmMessage: "Disconnect these players?", Widgets: map[string]string{"reason": "textarea"}},
	}
)

// descriptors are the built-in functions, in registration order.
func descriptors() []*croupierv1.FunctionDescriptor {
	return []*croupierv1.FunctionDescriptor{StatsDescriptor, OnlineDescriptor, BroadcastDescriptor, PublishDescriptor, KickDescriptor}
}

// Register adds the built-in functions of gw to c (before c.Serve).
func Register(c *sdk.Client, gw Gateway) error {
	f := functions{gw: gw, instance: c.InstanceID()}
	handlers := []sdk.Handler{sdk.Func(f.stats), sdk.Func(f.online), sdk.Func(f.broadcast), sdk.Func(f.publish), sdk.Func(f.kick)}
	for i, d := range descriptors() {
		if err := c.Register(d, handlers[i]); err != nil {
			return err
		}
	}
	return nil
}

type functions struct {
	gw       Gateway
	instance string
}

// StatsResult is the result of gateway.stats.
type StatsResult struct {
	gateway.Stats
	ServedBy string `json:"served_by"`
}

func (f functions) stats(context.Context, *sdk.Invocation, struct{}) (*StatsResult, error) {
	return &StatsResult{Stats: f.gw.Stats(), ServedBy: f.instance}, nil
}

// UniqIDs is the payload of gateway.online.
type UniqIDs struct {
	UniqIDs []string `json:"uniq_ids"`
}

// OnlineResult is the result of gateway.online.
type OnlineResult struct {
	ServerID int      `json:"server_id"`
	Online   []string `json:"online"`
	ServedBy string   `json:"served_by"`
}

func (f functions) online(_ context.Context, _ *sdk.Invocation, p UniqIDs) (*OnlineResult, error) {
	if err := checkUniqIDs(p.UniqIDs); err != nil {
		return nil, err
	}
	return &OnlineResult{ServerID: f.gw.ServerID(), Online: nonNil(f.gw.Online(p.UniqIDs)), ServedBy: f.instance}, nil
}

// Data is the payload of gateway.broadcast and gateway.publish.
type Data struct {
	Topics []string `json:"topics,omitempty"`
	Data   string   `json:"data"`
}

// SendResult is the result of gateway.broadcast and gateway.publish.
type SendResult struct {
	ServerID   int    `json:"server_id"`
	Recipients int    `json:"recipients"`
	ServedBy   string `json:"served_by"`
}

func (f functions) broadcast(_ context.Context, _ *sdk.Invocation, p Data) (*SendResult, error) {
	if err := checkData(p.Data); err != nil {
		return nil, err
	}
	return &SendResult{ServerID: f.gw.ServerID(), Recipients: f.gw.Broadcast([]byte(p.Data)), ServedBy: f.instance}, nil
}

func (f functions) publish(_ context.Context, _ *sdk.Invocation, p Data) (*SendResult, error) {
	if err := checkData(p.Data); err != nil {
		return nil, err
	}
	if len(p.Topics) == 0 || len(p.Topics) > maxTopics {
		return nil, sdk.Errorf("BAD_TOPICS", "give 1 to %d topics, not %d", maxTopics, len(p.Topics))
	}
	for _, t := range p.Topics {
		if !textLen(t, maxTopic) {
			return nil, sdk.Errorf("BAD_TOPICS", "a topic is 1 to %d characters long", maxTopic)
		}
	}
	return &SendResult{ServerID: f.gw.ServerID(), Recipients: f.gw.Publish(p.Topics, []byte(p.Data)), ServedBy: f.instance}, nil
}

// KickParams is the payload of gateway.kick.
type KickParams struct {
	UniqIDs []string `json:"uniq_ids"`
	Reason  string   `json:"reason"`
}

// KickResult is the result of gateway.kick.
type KickResult struct {
	ServerID int      `json:"server_id"`
	Kicked   []string `json:"kicked"`
	ServedBy string   `json:"served_by"`
}

func (f functions) kick(_ context.Context, _ *sdk.Invocation, p KickParams) (*KickResult, error) {
	if err := checkUniqIDs(p.UniqIDs); err != nil {
		return nil, err
	}
	if !textLen(p.Reason, maxReason) {
		return nil, sdk.Errorf("BAD_REASON", "the reason is 1 to %d characters long", maxReason)
	}
	return &KickResult{ServerID: f.gw.ServerID(), Kicked: nonNil(f.gw.Kick(p.UniqIDs, []byte(p.Reason))), ServedBy: f.instance}, nil
}

// The server checks payloads against the schemas before a call is routed;
// these checks keep the limits when a function is called some other way.
func checkUniqIDs(ids []string) error {
	if len(ids) == 0 || len(ids) > maxUniqIDs {
		return sdk.Errorf("BAD_UNIQ_IDS", "give 1 to %d uniq_ids, not %d", maxUniqIDs, len(ids))
	}
	for _, id := range ids {
		if !textLen(id, maxUniqID) {
			return sdk.Errorf("BAD_UNIQ_IDS", "a uniqId is 1 to %d characters long", maxUniqID)
		}
	}
	return nil
}

func checkData(d string) error {
	if !textLen(d, maxData) {
		return sdk.Errorf("BAD_DATA", "data is 1 to %d characters long", maxData)
	}
	return nil
}

// textLen reports whether s is 1 to limit characters long. A character
// takes at most 4 bytes in UTF-8 (an invalid byte counts as one character
// of one byte), so limit characters bound the memory at 4*limit bytes; a
// longer string is refused before its characters are counted.
func textLen(s string, limit int) bool {
	return s != "" && len(s) <= utf8.UTFMax*limit && utf8.RuneCountInString(s) <= limit
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
