package sdk_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

type grantParams struct {
	PlayerID string            `json:"player_id"`
	Items    []string          `json:"items"`
	Count    int               `json:"count"`
	Meta     map[string]string `json:"meta,omitempty"`
	Nested   struct {
		Reason string `json:"reason"`
	} `json:"nested"`
}

type grantResult struct {
	PlayerID string `json:"player_id"`
	Total    int    `json:"total"`
	Items    []any  `json:"items"`
}

func payload(t *testing.T, m map[string]any) *sdk.Invocation {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return &sdk.Invocation{ID: "inv-1", FunctionID: "player.grant", Payload: s}
}

func TestFuncRoundTrip(t *testing.T) {
	t.Parallel()
	var seen grantParams
	h := sdk.Func(func(_ context.Context, inv *sdk.Invocation, p grantParams) (*grantResult, error) {
		seen = p
		return &grantResult{PlayerID: p.PlayerID, Total: p.Count * len(p.Items), Items: []any{p.Items[0], 1.5, true, nil}}, nil
	})
	res, err := h(context.Background(), payload(t, map[string]any{
		"player_id": "p1", "items": []any{"sword", "shield"}, "count": 3,
		"meta": map[string]any{"src": "gm"}, "nested": map[string]any{"reason": "event"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := grantParams{PlayerID: "p1", Items: []string{"sword", "shield"}, Count: 3, Meta: map[string]string{"src": "gm"}}
	want.Nested.Reason = "event"
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("decoded %+v, want %+v", seen, want)
	}
	got := res.AsMap()
	wantRes := map[string]any{"player_id": "p1", "total": 6.0, "items": []any{"sword", 1.5, true, nil}}
	if !reflect.DeepEqual(got, wantRes) {
		t.Fatalf("result %v, want %v", got, wantRes)
	}
}

func TestFuncErrors(t *testing.T) {
	t.Parallel()
	h := sdk.Func(func(_ context.Context, _ *sdk.Invocation, p grantParams) (map[string]any, error) {
		if p.Count > 10 {
			return nil, sdk.Errorf("TOO_MANY", "at most 10, got %d", p.Count)
		}
		return map[string]any{"ok": true}, nil
	})
	// A payload that does not decode into P is a BAD_PAYLOAD function error.
	_, err := h(context.Background(), payload(t, map[string]any{"count": "three"}))
	var fe *sdk.Error
	if !errors.As(err, &fe) || fe.Code != "BAD_PAYLOAD" || !strings.Contains(fe.Message, "count") {
		t.Fatalf("bad payload: %v", err)
	}
	// The handler's own error is returned as is.
	_, err = h(context.Background(), payload(t, map[string]any{"count": 11}))
	if !errors.As(err, &fe) || fe.Code != "TOO_MANY" {
		t.Fatalf("handler error: %v", err)
	}

	// A result that is not a JSON object is refused.
	scalar := sdk.Func(func(context.Context, *sdk.Invocation, struct{}) (int, error) { return 7, nil })
	if _, err := scalar(context.Background(), payload(t, nil)); err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Fatalf("scalar result: %v", err)
	}
}

func TestToStruct(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      any
		want    map[string]any
		wantErr string
	}{
		{"map", map[string]any{"a": 1, "b": []any{"x"}}, map[string]any{"a": 1.0, "b": []any{"x"}}, ""},
		{"struct with tags", struct {
			A int    `json:"a"`
			B string `json:"-"`
			C *int   `json:"c,omitempty"`
		}{A: 2, B: "hidden"}, map[string]any{"a": 2.0}, ""},
		{"typed map", map[string]int{"n": 3}, map[string]any{"n": 3.0}, ""},
		{"nil map", map[string]any(nil), map[string]any{}, ""},
		{"slice", []int{1}, nil, "JSON object"},
		{"string", "text", nil, "JSON object"},
		{"unencodable", map[string]any{"ch": make(chan int)}, nil, "invalid type"},
		{"unencodable struct", struct{ F func() }{}, nil, "unsupported type"},
	}
	for _, tt := range tests {
		s, err := sdk.ToStruct(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: ToStruct = %v, %v; want an error containing %q", tt.name, s, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(s.AsMap(), tt.want) {
			t.Errorf("%s: ToStruct = %v, %v; want %v", tt.name, s.AsMap(), err, tt.want)
		}
	}
}

func TestInvocationDecode(t *testing.T) {
	t.Parallel()
	inv := payload(t, map[string]any{"player_id": "p1", "count": 2, "extra": "ignored"})
	var p grantParams
	if err := inv.Decode(&p); err != nil || p.PlayerID != "p1" || p.Count != 2 {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
	var m map[string]any
	if err := inv.Decode(&m); err != nil || m["extra"] != "ignored" {
		t.Fatalf("Decode into a map = %v, %v", m, err)
	}
	var wrong struct {
		Count string `json:"count"`
	}
	if err := inv.Decode(&wrong); err == nil {
		t.Fatal("Decode accepted a number into a string")
	}
	empty := &sdk.Invocation{Payload: &structpb.Struct{}}
	if err := empty.Decode(&p); err != nil {
		t.Fatalf("Decode of an empty payload: %v", err)
	}
}
