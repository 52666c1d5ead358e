package structjson

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// AppendStruct writes what protojson writes, byte for byte once protojson's
// random insignificant spaces are removed.
func TestAppendStructMatchesProtojson(t *testing.T) {
	for _, doc := range []string{
		`{}`,
		`{"player_id":"p42"}`,
		`{"b":true,"a":null,"c":[1,2.5,-3,"x",[],{}],"d":{"z":{"y":[{"x":false}]}}}`,
		`{"n":[0,-0,1e-7,1e-6,123456789,1e20,1e21,1.5e300,-2.5e-300,0.1,5e-324]}`,
		`{"s":"quote \" backslash \\ nl \n cr \r tab \t bs \b ff \f nul \u0000 us \u001f del \u007f é 😀 \u2028 <&>"}`,
		`{"":"empty key","k\"ey":"escaped key"}`,
	} {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(doc), s); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		checkAppendStruct(t, s)
	}
}

func checkAppendStruct(t *testing.T, s *structpb.Struct) {
	t.Helper()
	want, err := protojson.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		t.Fatal(err)
	}
	got, err := AppendStruct(nil, s)
	if err != nil {
		t.Fatalf("AppendStruct(%s): %v", want, err)
	}
	if !bytes.Equal(got, compact.Bytes()) {
		t.Fatalf("appendStruct = %s\nprotojson   = %s", got, compact.Bytes())
	}
}

func TestAppendStructRefusesNonFiniteNumbers(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(f)}}
		if _, err := AppendStruct(nil, s); err == nil {
			t.Fatalf("appendStruct accepted %v", f)
		}
	}
}

func FuzzAppendStruct(f *testing.F) {
	f.Add(`{"a":[1,"x",{"b":null}],"c":1e-7}`)
	f.Add(`{"s":"\u0001\"\\"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		s := &structpb.Struct{}
		if protojson.Unmarshal([]byte(doc), s) != nil {
			return
		}
		if _, err := protojson.Marshal(s); err != nil {
			return
		}
		checkAppendStruct(t, s)
	})
}

func BenchmarkPayloadEncode(b *testing.B) {
	s, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "reason": "cheating", "amount": 100, "items": []any{"a", "b"}})
	b.Run("protojson", func(b *testing.B) {
		for b.Loop() {
			_, _ = protojson.Marshal(s)
		}
	})
	b.Run("AppendStruct", func(b *testing.B) {
		for b.Loop() {
			_, _ = AppendStruct(make([]byte, 0, 256), s)
		}
	})
}
