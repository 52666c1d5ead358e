package server

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
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

	for name, r := range map[string]*croupierv1.InvokeFunctionResponse{
		"invalid UTF-8": {Error: "bad \xff"},
		"NaN result":    {Result: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}},
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

func BenchmarkRESTInvokeJSON(b *testing.B) {
	pj := &gwruntime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}
	res, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "name": "Ada", "level": 7, "coins": 1200, "items": []any{"sword", "shield"}})
	r := &croupierv1.InvokeFunctionResponse{Success: true, Result: res, Instance: "agent-1/bench-1"}
	for name, m := range map[string]gwruntime.Marshaler{"protojson": pj, "restMarshaler": restMarshaler{pj}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
