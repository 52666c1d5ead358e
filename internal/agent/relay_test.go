package agent

import (
	"testing"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestInvokeRouteReadsTheRoutingFieldsOnly(t *testing.T) {
	payload, _ := structpb.NewStruct(map[string]any{"function_id": "not.this", "n": 1.0, "nested": map[string]any{"instance_id": "nor-this"}})
	full, err := proto.Marshal(&agentv1.InvokeRequest{InvocationId: "inv-1", GameId: "demo", Env: "dev", FunctionId: "player.get",
		InstanceId: "gs-1", Payload: payload, IdempotencyKey: "k", Config: map[string]string{"a": "b"}, Actor: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	noInstance, _ := proto.Marshal(&agentv1.InvokeRequest{FunctionId: "player.get", Payload: payload})
	// A repeated field decodes as its last occurrence, as proto.Unmarshal does.
	twice := append(append([]byte(nil), noInstance...), mustMarshal(t, &agentv1.InvokeRequest{FunctionId: "player.ban"})...)
	for _, tc := range []struct {
		name      string
		in        []byte
		fn, inst  string
		wantError bool
	}{
		{name: "every field set", in: full, fn: "player.get", inst: "gs-1"},
		{name: "no instance", in: noInstance, fn: "player.get"},
		{name: "empty", in: nil},
		{name: "function twice", in: twice, fn: "player.ban"},
		{name: "truncated", in: full[:len(full)-3], wantError: true},
		{name: "bad tag", in: []byte{0xff}, wantError: true},
		{name: "not UTF-8", in: []byte{0x22, 0x01, 0xff}, wantError: true}, // field 4, 1 byte
	} {
		t.Run(tc.name, func(t *testing.T) {
			fn, inst, err := invokeRoute(tc.in)
			if tc.wantError {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("invokeRoute = %q, %q, %v; want INVALID_ARGUMENT", fn, inst, err)
				}
				return
			}
			if err != nil || fn != tc.fn || inst != tc.inst {
				t.Fatalf("invokeRoute = %q, %q, %v; want %q, %q", fn, inst, err, tc.fn, tc.inst)
			}
		})
	}
}

// FuzzInvokeRoute checks invokeRoute against the full decoder: whatever
// proto.Unmarshal accepts, invokeRoute reads the same two fields from.
func FuzzInvokeRoute(f *testing.F) {
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p42"})
	f.Add(mustMarshal(f, &agentv1.InvokeRequest{FunctionId: "player.get", InstanceId: "gs-1", Payload: payload}))
	f.Add(mustMarshal(f, &agentv1.InvokeRequest{GameId: "demo", Config: map[string]string{"x": "y"}}))
	f.Add([]byte{0x22, 0x00, 0x2a, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		fn, inst, err := invokeRoute(b)
		var m agentv1.InvokeRequest
		if proto.Unmarshal(b, &m) != nil {
			return // invokeRoute may accept more: it skips what it does not read
		}
		if err != nil || fn != m.GetFunctionId() || inst != m.GetInstanceId() {
			t.Fatalf("invokeRoute = %q, %q, %v; proto.Unmarshal read %q, %q", fn, inst, err, m.GetFunctionId(), m.GetInstanceId())
		}
	})
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkRelayCodec compares what the agent does to an invocation on its
// way to the game server and back: "decoded" is the former path (decode the
// request and re-encode it, decode the answer, set instance_id, re-encode),
// "raw" is relayInvoke's (read the routing fields, append instance_id).
//
//	go test -run '^$' -bench RelayCodec -benchmem ./internal/agent/
func BenchmarkRelayCodec(b *testing.B) {
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "fields": []any{"name", "level", "gold"}})
	result, _ := structpb.NewStruct(map[string]any{"id": "p42", "name": "Ada", "level": 12.0, "gold": 340.0, "banned": false})
	req := mustMarshal(b, &agentv1.InvokeRequest{InvocationId: "inv-1", GameId: "demo", Env: "dev", FunctionId: "player.get",
		Payload: payload, Config: map[string]string{"region": "eu"}, Actor: "user:alice"})
	resp := mustMarshal(b, &agentv1.InvokeResponse{Success: true, Result: result})
	b.Run("decoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var in agentv1.InvokeRequest
			if err := proto.Unmarshal(req, &in); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&in); err != nil {
				b.Fatal(err)
			}
			var out agentv1.InvokeResponse
			if err := proto.Unmarshal(resp, &out); err != nil {
				b.Fatal(err)
			}
			out.InstanceId = "gs-1"
			if _, err := proto.Marshal(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(resp)+16)
		for b.Loop() {
			if _, _, err := invokeRoute(req); err != nil {
				b.Fatal(err)
			}
			buf = protowire.AppendString(protowire.AppendTag(append(buf[:0], resp...), invokeResponseInstanceField, protowire.BytesType), "gs-1")
		}
	})
}
