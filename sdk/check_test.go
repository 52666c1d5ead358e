package sdk_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/sdk"
)

// TestInvokeRefusesWhatProtobufRefuses sends a game server invocations
// whose encoding protobuf's decoder refuses (a string that is not UTF-8
// anywhere in the request, a payload nested past its recursion limit):
// the SDK decodes them with vtprotobuf's decoder and must refuse them too,
// INVALID_ARGUMENT, without running the handler.
func TestInvokeRefusesWhatProtobufRefuses(t *testing.T) {
	t.Parallel()
	a := startFakeAgent(t)
	c := sdk.New(sdk.Options{AgentAddr: a.addr, InstanceID: "gs-1", Logger: quiet()})
	ran := make(chan struct{}, 16)
	if err := c.Register(&croupierv1.FunctionDescriptor{Id: "echo"}, func(_ context.Context, inv *sdk.Invocation) (*structpb.Struct, error) {
		ran <- struct{}{}
		return inv.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, a, c)

	const bad = "p\xff"
	str := func(s string) *structpb.Value { return structpb.NewStringValue(s) }
	deep := structpb.NewNullValue()
	for range 6000 { // 12,000 messages deep: a Struct and a Value a level
		deep = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": deep}})
	}
	echo := func(payload map[string]*structpb.Value) *agentv1.InvokeRequest {
		return &agentv1.InvokeRequest{FunctionId: "echo", Payload: &structpb.Struct{Fields: payload}}
	}
	cases := map[string]struct {
		req  *agentv1.InvokeRequest
		want string
	}{
		"function_id": {&agentv1.InvokeRequest{FunctionId: "echo" + bad}, "UTF-8"},
		"actor":       {&agentv1.InvokeRequest{FunctionId: "echo", Actor: bad}, "UTF-8"},
		"config":      {&agentv1.InvokeRequest{FunctionId: "echo", Config: map[string]string{"k": bad}}, "UTF-8"},
		"payload key": {echo(map[string]*structpb.Value{bad: str("x")}), "UTF-8"},
		"payload string in a list in a struct": {echo(map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{
			Values: []*structpb.Value{structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"b": str(bad)}})}})}), "UTF-8"},
		"payload too deep": {echo(map[string]*structpb.Value{"a": deep}), "nested too deep"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, tc := range cases {
		b, err := tc.req.MarshalVT() // protobuf's encoder would refuse
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, new(agentv1.InvokeRequest)); err == nil {
			t.Fatalf("%s: protobuf's decoder takes this request; the case tests nothing", name)
		}
		_, err = a.tun.CallAny(ctx, "gs-1", &anypb.Any{TypeUrl: "type.googleapis.com/croupier.agent.v1.InvokeRequest", Value: b})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %q", name, err, tc.want)
		}
	}
	select {
	case <-ran:
		t.Fatal("the handler ran for a refused request")
	default:
	}
	// The same kinds of request, valid, run.
	ok := echo(map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{str("p1")}})})
	ok.Actor, ok.Config = "op:alice", map[string]string{"k": "v"}
	b, err := ok.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.tun.CallAny(ctx, "gs-1", &anypb.Any{TypeUrl: "type.googleapis.com/croupier.agent.v1.InvokeRequest", Value: b})
	if err != nil {
		t.Fatal(err)
	}
	resp := new(agentv1.InvokeResponse)
	if err := out.UnmarshalTo(resp); err != nil {
		t.Fatal(err)
	}
	if !resp.GetSuccess() || !proto.Equal(resp.GetResult(), ok.GetPayload()) {
		t.Fatalf("valid request: %v", resp)
	}
}
