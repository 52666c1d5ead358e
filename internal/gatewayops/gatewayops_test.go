package gatewayops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/gateway"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/sdk"
)

// fakeGateway records what the functions asked of it.
type fakeGateway struct {
	online  []string
	sent    []string
	topics  []string
	kicked  []string
	reasons []string
}

func (f *fakeGateway) ServerID() int { return 3 }
func (f *fakeGateway) Stats() gateway.Stats {
	return gateway.Stats{ServerID: 3, Online: len(f.online), Metrics: map[string]gateway.Meter{"conn_open": {Count: 2}}}
}
func (f *fakeGateway) Online(ids []string) []string {
	var out []string
	for _, id := range ids {
		if slices.Contains(f.online, id) {
			out = append(out, id)
		}
	}
	return out
}
func (f *fakeGateway) Broadcast(data []byte) int {
	f.sent = append(f.sent, string(data))
	return len(f.online)
}
func (f *fakeGateway) Publish(topics []string, data []byte) int {
	f.topics = append(f.topics, topics...)
	f.sent = append(f.sent, string(data))
	return 1
}
func (f *fakeGateway) Kick(ids []string, data []byte) []string {
	f.reasons = append(f.reasons, string(data))
	out := f.Online(ids)
	f.kicked = append(f.kicked, out...)
	return out
}

func TestDescriptorsAreValid(t *testing.T) {
	for _, d := range descriptors() {
		if err := schema.ValidateDescriptor(d); err != nil {
			t.Errorf("%s: %v", d.GetId(), err)
		}
		write := d.GetId() != "gateway.stats" && d.GetId() != "gateway.online"
		if d.GetSemantics().GetReadOnly() == write {
			t.Errorf("%s: read-only %v", d.GetId(), d.GetSemantics().GetReadOnly())
		}
	}
	if err := Register(sdk.New(sdk.Options{InstanceID: "gateway-3"}), &fakeGateway{}); err != nil {
		t.Fatal(err)
	}
}

func TestFunctions(t *testing.T) {
	g := &fakeGateway{online: []string{"A", "B"}}
	f := functions{gw: g, instance: "gateway-3"}
	ctx := context.Background()

	st, err := f.stats(ctx, nil, struct{}{})
	if err != nil || st.Online != 2 || st.ServedBy != "gateway-3" || st.Metrics["conn_open"].Count != 2 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	on, err := f.online(ctx, nil, UniqIDs{UniqIDs: []string{"A", "Z"}})
	if err != nil || !slices.Equal(on.Online, []string{"A"}) || on.ServerID != 3 {
		t.Fatalf("online: %+v %v", on, err)
	}
	if on, _ := f.online(ctx, nil, UniqIDs{UniqIDs: []string{"Z"}}); on.Online == nil {
		t.Fatal("online of nobody is null, want []")
	}
	if r, err := f.broadcast(ctx, nil, Data{Data: "hi"}); err != nil || r.Recipients != 2 {
		t.Fatalf("broadcast: %+v %v", r, err)
	}
	if r, err := f.publish(ctx, nil, Data{Topics: []string{"news"}, Data: "x"}); err != nil || r.Recipients != 1 {
		t.Fatalf("publish: %+v %v", r, err)
	}
	k, err := f.kick(ctx, nil, KickParams{UniqIDs: []string{"B", "Q"}, Reason: "cheating"})
	if err != nil || !slices.Equal(k.Kicked, []string{"B"}) || !slices.Equal(g.reasons, []string{"cheating"}) {
		t.Fatalf("kick: %+v %v", k, err)
	}
}

// The limits hold when a call arrives without the server's schema check.
func TestFunctionsRefuseBadParams(t *testing.T) {
	g := &fakeGateway{}
	f := functions{gw: g, instance: "gateway-3"}
	ctx := context.Background()
	many := make([]string, maxUniqIDs+1)
	for i := range many {
		many[i] = "u"
	}
	for name, call := range map[string]func() error{
		"online without ids": func() error { _, err := f.online(ctx, nil, UniqIDs{}); return err },
		"online of 1001 ids": func() error { _, err := f.online(ctx, nil, UniqIDs{UniqIDs: many}); return err },
		"online of a long id": func() error {
			_, err := f.online(ctx, nil, UniqIDs{UniqIDs: []string{strings.Repeat("u", 129)}})
			return err
		},
		"broadcast of nothing":   func() error { _, err := f.broadcast(ctx, nil, Data{}); return err },
		"broadcast of 64 KiB+1":  func() error { _, err := f.broadcast(ctx, nil, Data{Data: strings.Repeat("x", maxData+1)}); return err },
		"publish without topics": func() error { _, err := f.publish(ctx, nil, Data{Data: "x"}); return err },
		"publish to a long topic": func() error {
			_, err := f.publish(ctx, nil, Data{Topics: []string{strings.Repeat("t", 129)}, Data: "x"})
			return err
		},
		"kick without a reason": func() error { _, err := f.kick(ctx, nil, KickParams{UniqIDs: []string{"A"}}); return err },
	} {
		var fe *sdk.Error
		if err := call(); !errors.As(err, &fe) || !strings.HasPrefix(fe.Code, "BAD_") {
			t.Errorf("%s: %v, want a BAD_* function error", name, err)
		}
	}
	if len(g.sent)+len(g.kicked)+len(g.reasons) != 0 {
		t.Errorf("a refused call reached the gateway: %+v", g)
	}
}

// The handlers count lengths as the schemas do, in characters: a payload
// the server's schema check lets through is not refused by the handler,
// and the other way round. Before the fix the handlers counted bytes, so
// 30,000 CJK characters (90,000 bytes) passed the schema and were refused.
func TestFunctionsCountCharactersLikeSchemas(t *testing.T) {
	f := functions{gw: &fakeGateway{online: []string{"A"}}, instance: "gateway-3"}
	ctx := context.Background()
	cjk := func(n int) string { return strings.Repeat("界", n) }
	type lenCase struct {
		d       *croupierv1.FunctionDescriptor
		payload map[string]any
		call    func() error
	}
	broadcast := func(data string) lenCase {
		return lenCase{BroadcastDescriptor, map[string]any{"data": data}, func() error {
			_, err := f.broadcast(ctx, nil, Data{Data: data})
			return err
		}}
	}
	kick := func(reason string) lenCase {
		return lenCase{KickDescriptor, map[string]any{"uniq_ids": []any{"A"}, "reason": reason}, func() error {
			_, err := f.kick(ctx, nil, KickParams{UniqIDs: []string{"A"}, Reason: reason})
			return err
		}}
	}
	publish := func(topic string) lenCase {
		return lenCase{PublishDescriptor, map[string]any{"topics": []any{topic}, "data": "x"}, func() error {
			_, err := f.publish(ctx, nil, Data{Topics: []string{topic}, Data: "x"})
			return err
		}}
	}
	online := func(id string) lenCase {
		return lenCase{OnlineDescriptor, map[string]any{"uniq_ids": []any{id}}, func() error {
			_, err := f.online(ctx, nil, UniqIDs{UniqIDs: []string{id}})
			return err
		}}
	}
	for name, tc := range map[string]lenCase{
		"broadcast of 30,000 CJK characters":       broadcast(cjk(30000)),
		"broadcast of 65,536 CJK characters":       broadcast(cjk(maxData)),
		"broadcast of 65,537 CJK characters":       broadcast(cjk(maxData + 1)),
		"broadcast of 65,536 ASCII characters":     broadcast(strings.Repeat("x", maxData)),
		"broadcast of 65,537 ASCII characters":     broadcast(strings.Repeat("x", maxData+1)),
		"kick with 1,024 CJK characters":           kick(cjk(maxReason)),
		"kick with 1,025 CJK characters":           kick(cjk(maxReason + 1)),
		"publish to a topic of 128 CJK characters": publish(cjk(maxTopic)),
		"publish to a topic of 129 CJK characters": publish(cjk(maxTopic + 1)),
		"online of an id of 128 CJK characters":    online(cjk(maxUniqID)),
		"online of an id of 129 CJK characters":    online(cjk(maxUniqID + 1)),
	} {
		s, err := schema.Compile(tc.d.GetParamsSchema())
		if err != nil {
			t.Fatal(err)
		}
		schemaOK := s.Validate(tc.payload) == nil
		if err := tc.call(); schemaOK != (err == nil) {
			t.Errorf("%s: schema accepts %v, handler: %v", name, schemaOK, err)
		}
	}
}
