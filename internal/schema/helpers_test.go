package schema_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// mustStruct parses a JSON object into a protobuf Struct.
func mustStruct(t testing.TB, js string) *structpb.Struct {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", js, err)
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatalf("structpb.NewStruct(%s): %v", js, err)
	}
	return s
}

// decode parses JSON the way payloads arrive: through structpb, so numbers
// are float64 exactly as in production.
func decode(t testing.TB, js string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", js, err)
	}
	pv, err := structpb.NewValue(v)
	if err != nil {
		t.Fatalf("structpb.NewValue(%s): %v", js, err)
	}
	return pv.AsInterface()
}
