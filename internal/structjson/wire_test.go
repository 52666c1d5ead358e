package structjson

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

var wireDocs = []string{
	`{}`,
	`{"player_id":"p42"}`,
	`{"b":true,"a":null,"c":[1,2.5,-3,"x",[],{}],"d":{"z":{"y":[{"x":false}]}}}`,
	`{"n":[0,-0,1e-7,1e-6,123456789,1e20,1e21,1.5e300,-2.5e-300,0.1,5e-324]}`,
	`{"s":"quote \" backslash \\ nl \n nul \u0000 us \u001f del \u007f é 😀 \u2028 <&>"}`,
	`{"":"empty key","k\"ey":"escaped key","zz":1,"aa":2,"mm":3}`,
}

// AppendWire writes, from the encoded Struct, what AppendStructStrict
// writes from the decoded one.
func TestAppendWireMatchesDecoded(t *testing.T) {
	for _, doc := range wireDocs {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(doc), s); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		raw, err := proto.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		checkAppendWire(t, raw, true)
	}
}

// What a protobuf encoder does not write is left to the decoder.
func TestAppendWireLeavesIrregularInputToTheDecoder(t *testing.T) {
	entry := func(key string, value []byte) []byte {
		e := protowire.AppendTag(nil, 1, protowire.BytesType)
		e = protowire.AppendString(e, key)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendBytes(e, value)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
	}
	str := func(s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), s)
	}
	for name, raw := range map[string][]byte{
		"key twice":       append(entry("k", str("a")), entry("k", str("b"))...),
		"value with two":  entry("k", append(str("a"), str("b")...)),
		"value with none": entry("k", nil),
		"invalid UTF-8":   entry("k", str("\xff")),
		"unknown field":   protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1),
		"truncated":       entry("k", str("abc"))[:5],
		"NaN":             entry("k", protowire.AppendFixed64(protowire.AppendTag(nil, 2, protowire.Fixed64Type), 0x7ff8000000000001)),
	} {
		if b, ok := AppendWire(nil, raw); ok {
			t.Fatalf("%s: wrote %s", name, b)
		}
	}
}

func checkAppendWire(t *testing.T, raw []byte, mustHandle bool) {
	t.Helper()
	got, ok := AppendWire(nil, raw)
	if !ok {
		if mustHandle {
			t.Fatalf("AppendWire(%x) left it to the decoder", raw)
		}
		return
	}
	s := &structpb.Struct{}
	if err := proto.Unmarshal(raw, s); err != nil {
		t.Fatalf("AppendWire wrote %s for bytes protobuf refuses: %v", got, err)
	}
	want, err := AppendStructStrict(nil, s)
	if err != nil {
		t.Fatalf("AppendWire wrote %s for a Struct AppendStructStrict refuses: %v", got, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendWire = %s\ndecoded    = %s", got, want)
	}
}

func FuzzAppendWire(f *testing.F) {
	for _, doc := range wireDocs {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(doc), s); err != nil {
			f.Fatal(err)
		}
		raw, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkAppendWire(t, raw, false) })
}

func BenchmarkResultJSON(b *testing.B) {
	s, _ := structpb.NewStruct(map[string]any{"player_id": "p42", "name": "Ada", "level": 7, "coins": 1200, "items": []any{"sword", "shield"}})
	raw, _ := proto.Marshal(s)
	b.Run("decode+AppendStruct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := &structpb.Struct{}
			_ = proto.Unmarshal(raw, d)
			_, _ = AppendStructStrict(make([]byte, 0, 256), d)
		}
	})
	b.Run("AppendWire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = AppendWire(make([]byte, 0, 256), raw)
		}
	})
}
