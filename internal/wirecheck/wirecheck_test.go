package wirecheck

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzStruct: Struct accepts what protobuf decodes as a Struct and refuses
// what it does not; StructVT accepts no more than Struct.
func FuzzStruct(f *testing.F) {
	s, _ := structpb.NewStruct(map[string]any{"a": 1, "b": []any{"x", true, nil, map[string]any{"c": 2.5}}})
	b, _ := proto.Marshal(s)
	f.Add(b)
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})
	f.Add(deepLists(4999)) // the leaf at depth 10000, one past the limit
	f.Add(deepLists(4998))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Struct(b, 0)
		derr := proto.Unmarshal(b, &structpb.Struct{})
		if (err == nil) != (derr == nil) {
			t.Fatalf("Struct: %v, proto.Unmarshal: %v", err, derr)
		}
		if err != nil && StructVT(b, 0) == nil {
			t.Fatalf("StructVT takes what Struct refuses (%v)", err)
		}
	})
}

// deepLists is a Struct whose field holds n lists, one in the other.
func deepLists(n int) []byte {
	v := structpb.NewNullValue()
	for range n {
		v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	b, err := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
	if err != nil {
		panic(err)
	}
	return b
}

// TestStructDepthBoundary: the deepest Struct protobuf's decoder takes, at
// either parity of nesting, and one level more.
func TestStructDepthBoundary(t *testing.T) {
	for _, n := range []int{4997, 4998, 4999, 5000} {
		b := deepLists(n)
		for _, withObject := range []bool{false, true} {
			if withObject { // one more Struct level: the other parity
				b, _ = proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"o": structpb.NewStructValue(mustStruct(b))}})
			}
			err := Struct(b, 0)
			derr := proto.Unmarshal(b, &structpb.Struct{})
			if (err == nil) != (derr == nil) {
				t.Fatalf("%d lists, object %v: Struct: %v, proto.Unmarshal: %v", n, withObject, err, derr)
			}
		}
	}
}

func mustStruct(b []byte) *structpb.Struct {
	s := &structpb.Struct{}
	if err := (proto.UnmarshalOptions{RecursionLimit: 1 << 20}).Unmarshal(b, s); err != nil {
		panic(err)
	}
	return s
}
