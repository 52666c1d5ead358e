package wirecheck

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
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

// TestStringMapEntryVT: an entry of a map<string, string> is taken as
// protobuf's decoder takes it, except a key or value that is not
// length-delimited, which protobuf skips and vtprotobuf misreads.
func TestStringMapEntryVT(t *testing.T) {
	bytesField := func(num protowire.Number, v string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	cases := []struct {
		name       string
		entry      []byte
		wireTypeVT bool // refused for vtprotobuf only
	}{
		{"valid", cat(bytesField(1, "a"), bytesField(2, "b")), false},
		{"key not UTF-8", cat(bytesField(1, "\xff"), bytesField(2, "b")), false},
		{"value not UTF-8", cat(bytesField(1, "a"), bytesField(2, "\xff")), false},
		{"unknown field not UTF-8", cat(bytesField(1, "a"), bytesField(3, "\xff")), false},
		{"truncated", bytesField(1, "a")[:2], false},
		{"varint key", cat(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), bytesField(2, "b")), true},
		{"varint value", cat(bytesField(1, "a"), protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 7)), true},
	}
	configField := (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().Fields().ByName("config").Number()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := StringMapEntryVT(tc.entry)
			if tc.wireTypeVT {
				if !errors.Is(err, ErrEntryWireType) {
					t.Fatalf("StringMapEntryVT = %v, want ErrEntryWireType", err)
				}
				return
			}
			msg := protowire.AppendBytes(protowire.AppendTag(nil, configField, protowire.BytesType), tc.entry)
			perr := proto.Unmarshal(msg, &agentv1.InvokeRequest{})
			if (err == nil) != (perr == nil) {
				t.Fatalf("StringMapEntryVT = %v, protobuf's decoder: %v", err, perr)
			}
		})
	}
}
