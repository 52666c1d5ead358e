package server

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/invoke"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The REST answer to InvokeFunction is the document protojson writes with
// the gateway's options, byte for byte once protojson's random
// insignificant spaces are removed, and what protojson refuses is refused.
func TestRESTInvokeJSONMatchesProtojson(t *testing.T) {
	pj := &gwruntime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}
	m := restMarshaler{pj}
	result := func(doc string) *structpb.Struct {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(doc), s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, r := range []*croupierv1.InvokeFunctionResponse{
		{},
		{Success: true, Result: result(`{"player":{"id":"p42","level":3,"tags":["a","b"],"x":null,"big":1e21,"tiny":1e-7}}`), Instance: "agent-1/bench-1"},
		{Success: true, Result: &structpb.Struct{}},
		{Error: "quote \" backslash \\ nl \n nul \u0000 é 😀 <&>", ErrorCode: "FUNCTION_ERROR", Instance: "a/b"},
		{ErrorCode: "APPROVAL_REQUIRED", ApprovalId: "ap-123"},
		{Success: true, Results: []*croupierv1.InstanceResult{
			{Instance: "a/1", Success: true, Result: result(`{"n":1}`)},
			{Instance: "a/2", Error: "down", ErrorCode: "UNAVAILABLE"},
		}},
	} {
		want, err := pj.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, want); err != nil {
			t.Fatal(err)
		}
		if _, ok := appendInvokeResponse(nil, r); !ok {
			t.Fatalf("%s: left to protojson", compact.Bytes())
		}
		got, err := m.Marshal(r)
		if err != nil {
			t.Fatalf("%s: %v", compact.Bytes(), err)
		}
		if !bytes.Equal(got, compact.Bytes()) {
			t.Fatalf("restMarshaler = %s\nprotojson     = %s", got, compact.Bytes())
		}
	}

	// The result as the game server's bytes (direct.Invoke leaves it so):
	// written from them, or decoded first when irregular (a key twice).
	encoded := func(raw []byte) *croupierv1.InvokeFunctionResponse {
		r := &croupierv1.InvokeFunctionResponse{Success: true, Instance: "agent-1/bench-1"}
		r.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), raw))
		return r
	}
	regular, err := proto.Marshal(result(`{"player":{"id":"p42","tags":["a",1,null,true]},"coins":1200}`))
	if err != nil {
		t.Fatal(err)
	}
	entry := func(k, v string) []byte {
		val := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), v)
		e := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), k)
		e = protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), val)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
	}
	for _, raw := range [][]byte{regular, append(entry("k", "first"), entry("k", "last")...)} {
		want, err := pj.Marshal(materialized(t, encoded(raw)))
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, want); err != nil {
			t.Fatal(err)
		}
		out, err := m.Marshal(encoded(raw))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer // the irregular one comes from protojson
		if err := json.Compact(&got, out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), compact.Bytes()) {
			t.Fatalf("restMarshaler = %s\nprotojson     = %s", got.Bytes(), compact.Bytes())
		}
	}

	for name, r := range map[string]*croupierv1.InvokeFunctionResponse{
		"invalid UTF-8":      {Error: "bad \xff"},
		"Value without kind": {Result: &structpb.Struct{Fields: map[string]*structpb.Value{"v": {}}}},
		"NaN result":         {Result: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}},
		"Inf in broadcast": {Results: []*croupierv1.InstanceResult{
			{Result: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.Inf(1))}}},
		}},
	} {
		if _, err := pj.Marshal(r); err == nil {
			t.Fatalf("%s: protojson accepts it; the case tests nothing", name)
		}
		if b, err := m.Marshal(r); err == nil {
			t.Fatalf("%s: restMarshaler wrote %s, want protojson's error", name, b)
		}
	}
}

func materialized(t *testing.T, r *croupierv1.InvokeFunctionResponse) *croupierv1.InvokeFunctionResponse {
	t.Helper()
	if err := invoke.Materialize(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func BenchmarkRESTInvokeJSON(b *testing.B) {
	pj := &gwruntime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}
	res, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "name": "Ada", "level": 7, "coins": 1200, "items": []any{"sword", "shield"}})
	raw, _ := proto.Marshal(res)
	unknown := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), raw)
	// What REST received before: the result decoded (Materialize), then
	// protojson; and now: the bytes, written by restMarshaler.
	b.Run("materialize+protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := &croupierv1.InvokeFunctionResponse{Success: true, Instance: "agent-1/bench-1"}
			r.ProtoReflect().SetUnknown(unknown)
			if err := invoke.Materialize(r); err != nil {
				b.Fatal(err)
			}
			if _, err := pj.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("restMarshaler", func(b *testing.B) {
		b.ReportAllocs()
		m := restMarshaler{pj}
		for b.Loop() {
			r := &croupierv1.InvokeFunctionResponse{Success: true, Instance: "agent-1/bench-1"}
			r.ProtoReflect().SetUnknown(unknown)
			if _, err := m.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
