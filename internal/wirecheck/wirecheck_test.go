package wirecheck

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzStruct: Struct accepts what protobuf decodes as a Struct and refuses what it
// does not.
func FuzzStruct(f *testing.F) {
	s, _ := structpb.NewStruct(map[string]any{"a": 1, "b": []any{"x", true, nil, map[string]any{"c": 2.5}}})
	b, _ := proto.Marshal(s)
	f.Add(b)
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Struct(b, 0)
		derr := proto.Unmarshal(b, &structpb.Struct{})
		if (err == nil) != (derr == nil) {
			t.Fatalf("Struct: %v, proto.Unmarshal: %v", err, derr)
		}
	})
}
