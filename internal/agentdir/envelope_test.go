package agentdir

import (
	"testing"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"google.golang.org/protobuf/proto"
)

func TestCallEnvelopeRoundTrip(t *testing.T) {
	req := &agentv1.InvokeRequest{InvocationId: "inv-1", FunctionId: "player.get"}
	b, err := encodeCall(kindInvoke, "agent-7", req)
	if err != nil {
		t.Fatal(err)
	}
	env, err := decodeCall(b)
	if err != nil {
		t.Fatal(err)
	}
	got := &agentv1.InvokeRequest{}
	if err := proto.Unmarshal(env.req, got); err != nil {
		t.Fatal(err)
	}
	if env.kind != kindInvoke || env.agent != "agent-7" || !proto.Equal(got, req) {
		t.Fatalf("decoded %d %q %v; want %d %q %v", env.kind, env.agent, got, kindInvoke, "agent-7", req)
	}
}

func FuzzDecodeCall(f *testing.F) {
	b, _ := encodeCall(kindAny, "a", &agentv1.CancelJobRequest{JobId: "j"})
	f.Add(b)
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeCall(data) // never panics; errors are the caller's INVALID_ARGUMENT
	})
}
