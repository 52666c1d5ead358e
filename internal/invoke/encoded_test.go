package invoke

import (
	"bytes"
	"testing"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A result passed through still encoded reaches a gRPC caller, a replay of
// an idempotent call, and a REST answer (Materialize), exactly as the game
// server wrote it.
func TestEncodedResultReachesCaller(t *testing.T) {
	result, _ := structpb.NewStruct(map[string]any{"gold": 100, "name": "p42", "items": []any{"a", map[string]any{"b": nil}}})
	in := &agentv1.InvokeResponse{Success: true, Result: result, ErrorCode: "", Error: "", InstanceId: "gs-1"}
	r, err := DecodeResponse(mustAny(t, in), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if r.GetResult() != nil || !r.GetSuccess() || r.GetInstanceId() != "gs-1" {
		t.Fatalf("decoded %v: want the result left encoded and the other fields decoded", r)
	}
	out := &croupierv1.InvokeFunctionResponse{Success: r.GetSuccess()}
	out.ProtoReflect().SetUnknown(encodedResult(r))
	b, err := proto.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	got := &croupierv1.InvokeFunctionResponse{}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetResult(), result) {
		t.Fatalf("gRPC caller got result %v, want %v", got.GetResult(), result)
	}
	// An idempotency key stores the response as an Any and replays it.
	stored := mustAny(t, out)
	replayed := &croupierv1.InvokeFunctionResponse{}
	if err := stored.UnmarshalTo(replayed); err != nil || !proto.Equal(replayed.GetResult(), result) {
		t.Fatalf("replayed result %v (%v), want %v", replayed.GetResult(), err, result)
	}
	if err := Materialize(out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(out.GetResult(), result) || len(out.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("materialized result %v (unknown %x), want %v", out.GetResult(), out.ProtoReflect().GetUnknown(), result)
	}

	// A broadcast passes each instance's result through under
	// InstanceResult's field number.
	bc := &croupierv1.InvokeFunctionResponse{Results: []*croupierv1.InstanceResult{{Instance: "a/gs-1", Success: true}}}
	bc.Results[0].ProtoReflect().SetUnknown(retag(encodedResult(r), instanceResultField))
	if b, err = proto.Marshal(bc); err != nil {
		t.Fatal(err)
	}
	got = &croupierv1.InvokeFunctionResponse{}
	if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got.GetResults()[0].GetResult(), result) {
		t.Fatalf("gRPC caller got instance result %v (%v), want %v", got.GetResults()[0].GetResult(), err, result)
	}
	if err := Materialize(bc); err != nil {
		t.Fatal(err)
	}
	if res := bc.GetResults()[0]; !proto.Equal(res.GetResult(), result) || len(res.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("materialized instance result %v (unknown %x), want %v", res.GetResult(), res.ProtoReflect().GetUnknown(), result)
	}
}

// A response as a decoder may meet it: the result in two pieces and the
// other fields around and between them, one of them twice. What DecodeResponse
// keeps decodes as proto.Unmarshal decodes the whole.
func TestDecodeResponseFieldsApart(t *testing.T) {
	part := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r1, _ := structpb.NewStruct(map[string]any{"gold": 1, "name": "a"})
	r2, _ := structpb.NewStruct(map[string]any{"gold": 2, "level": 7})
	var b []byte
	b = append(b, part(&agentv1.InvokeResponse{InstanceId: "gs-1"})...)
	b = append(b, part(&agentv1.InvokeResponse{Result: r1})...)
	b = append(b, part(&agentv1.InvokeResponse{Success: true, InstanceId: "gs-2"})...)
	b = append(b, part(&agentv1.InvokeResponse{Result: r2})...)
	want := &agentv1.InvokeResponse{}
	if err := proto.Unmarshal(b, want); err != nil {
		t.Fatal(err)
	}
	orig := append([]byte(nil), b...)
	r, err := DecodeResponse(&anypb.Any{TypeUrl: invokeResponseType, Value: b}, "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, orig) {
		t.Fatal("DecodeResponse changed the bytes it was given")
	}
	if err := Materialize(r); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r, want) {
		t.Fatalf("decoded %v, want %v", r, want)
	}
}

func TestDecodeResponseRefusesMalformed(t *testing.T) {
	field := func(num protowire.Number, typ protowire.Type, v []byte) []byte {
		b := protowire.AppendTag(nil, num, typ)
		switch typ {
		case protowire.BytesType:
			return protowire.AppendBytes(b, v)
		case protowire.VarintType:
			return protowire.AppendVarint(b, 1)
		}
		return b
	}
	value := func(v []byte) []byte { // a Struct with one entry "k": v
		entry := append(field(1, protowire.BytesType, []byte("k")), field(2, protowire.BytesType, v)...)
		return field(1, protowire.BytesType, entry)
	}
	for name, b := range map[string][]byte{
		"truncated result":     append(protowire.AppendTag(nil, 2, protowire.BytesType), 10, 1),
		"invalid UTF-8 string": field(2, protowire.BytesType, value(field(3, protowire.BytesType, []byte{0xff}))),
		"invalid UTF-8 key":    field(2, protowire.BytesType, field(1, protowire.BytesType, field(1, protowire.BytesType, []byte{0xc3}))),
		"nested garbage":       field(2, protowire.BytesType, value(field(5, protowire.BytesType, []byte{0xff, 0xff}))),
		"invalid UTF-8 error":  field(3, protowire.BytesType, []byte{0xff}),
		"list of garbage":      field(2, protowire.BytesType, value(field(6, protowire.BytesType, field(1, protowire.BytesType, []byte{0x0a})))),
	} {
		_, err := DecodeResponse(&anypb.Any{TypeUrl: invokeResponseType, Value: b}, "agent-1")
		if status.Code(err) != codes.Internal {
			t.Errorf("%s: err = %v, want INTERNAL", name, err)
		}
	}
	if _, err := DecodeResponse(mustAny(t, &agentv1.StartJobResponse{}), "agent-1"); status.Code(err) != codes.Internal {
		t.Errorf("wrong type: err = %v, want INTERNAL", err)
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	result, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "gold": 100, "level": 7, "name": "Player 42", "inventory": []any{"sword", "shield"}})
	a := mustAny(b, &agentv1.InvokeResponse{Success: true, Result: result, InstanceId: "gs-1"})
	b.Run("decoded", func(b *testing.B) {
		for b.Loop() {
			r := &agentv1.InvokeResponse{}
			if err := a.UnmarshalTo(r); err != nil {
				b.Fatal(err)
			}
			if _, err := proto.Marshal(&croupierv1.InvokeFunctionResponse{Success: r.GetSuccess(), Result: r.GetResult()}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoded", func(b *testing.B) {
		for b.Loop() {
			r, err := DecodeResponse(a, "agent-1")
			if err != nil {
				b.Fatal(err)
			}
			out := &croupierv1.InvokeFunctionResponse{Success: r.GetSuccess()}
			out.ProtoReflect().SetUnknown(encodedResult(r))
			if _, err := proto.Marshal(out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
