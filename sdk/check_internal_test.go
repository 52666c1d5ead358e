package sdk

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
)

const bad = "p\xff"

// encodeVT is r as vtprotobuf encodes it: protobuf's encoder refuses
// invalid UTF-8 and would not let these requests be written.
func encodeVT(t *testing.T, r *agentv1.InvokeRequest) []byte {
	t.Helper()
	b, err := r.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameVerdict fails unless checkInvokeRequest and protobuf's decoder both
// take b or both refuse it; it returns whether they refused it.
func sameVerdict(t *testing.T, name string, b []byte) bool {
	t.Helper()
	err := checkInvokeRequest(b)
	perr := proto.Unmarshal(b, new(agentv1.InvokeRequest))
	if (err == nil) != (perr == nil) {
		t.Fatalf("%s: checkInvokeRequest: %v; protobuf's decoder: %v", name, err, perr)
	}
	return err != nil
}

// TestCheckInvokeRequestRefusesEveryBadString puts a string that is not
// UTF-8 in each string field of InvokeRequest — every one its descriptor
// has, so a field added later is tested too — in its config map's keys and
// values, and in the payload: checkInvokeRequest must refuse each, as
// protobuf's decoder does.
func TestCheckInvokeRequestRefusesEveryBadString(t *testing.T) {
	fields := (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().Fields()
	cases := 0
	for i := range fields.Len() {
		fd := fields.Get(i)
		var reqs []*agentv1.InvokeRequest
		switch {
		case fd.IsMap():
			for _, kv := range [][2]string{{bad, "v"}, {"k", bad}} {
				r := &agentv1.InvokeRequest{}
				r.ProtoReflect().Mutable(fd).Map().Set(protoreflect.ValueOfString(kv[0]).MapKey(), protoreflect.ValueOfString(kv[1]))
				reqs = append(reqs, r)
			}
		case fd.Kind() == protoreflect.StringKind:
			r := &agentv1.InvokeRequest{}
			r.ProtoReflect().Set(fd, protoreflect.ValueOfString(bad))
			reqs = append(reqs, r)
		}
		for _, r := range reqs {
			cases++
			if !sameVerdict(t, string(fd.Name()), encodeVT(t, r)) {
				t.Fatalf("%s: a string that is not UTF-8 was taken", fd.Name())
			}
		}
	}
	if cases < 9 { // seven strings, a map's key and value
		t.Fatalf("only %d cases: the descriptor walk is broken", cases)
	}
	str := structpb.NewStringValue
	nested := func(v *structpb.Value) *structpb.Struct {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{
			Values: []*structpb.Value{structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"b": v}})}})}}
	}
	for name, p := range map[string]*structpb.Struct{
		"payload key":                   {Fields: map[string]*structpb.Value{bad: str("x")}},
		"payload string":                {Fields: map[string]*structpb.Value{"a": str(bad)}},
		"payload string, deeper":        nested(str(bad)),
		"payload key, deeper":           nested(structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{bad: str("x")}})),
		"payload string in a list only": {Fields: map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{str(bad)}})}},
	} {
		if !sameVerdict(t, name, encodeVT(t, &agentv1.InvokeRequest{FunctionId: "f", Payload: p})) {
			t.Fatalf("%s: a string that is not UTF-8 was taken", name)
		}
	}
	ok := nested(str("fine"))
	ok.Fields["k"] = str("v")
	if sameVerdict(t, "valid", encodeVT(t, &agentv1.InvokeRequest{FunctionId: "f", Actor: "op", Config: map[string]string{"k": "v"}, Payload: ok})) {
		t.Fatal("a valid request was refused")
	}
}

// TestCheckInvokeRequestDepthMatchesProtobuf finds the deepest payload
// protobuf's decoder takes, nested in objects and in lists, and checks
// checkInvokeRequest takes it and refuses one level more.
func TestCheckInvokeRequestDepthMatchesProtobuf(t *testing.T) {
	for name, wrap := range map[string]func(*structpb.Value) *structpb.Value{
		"objects": func(v *structpb.Value) *structpb.Value {
			return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
		},
		"lists": func(v *structpb.Value) *structpb.Value {
			return structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		},
	} {
		encode := func(levels int) []byte {
			v := structpb.NewNullValue()
			for range levels {
				v = wrap(v)
			}
			return encodeVT(t, &agentv1.InvokeRequest{Payload: &structpb.Struct{Fields: map[string]*structpb.Value{"x": v}}})
		}
		lo, hi := 0, protowire.DefaultRecursionLimit // protobuf takes lo levels and refuses hi
		for hi-lo > 1 {
			mid := (lo + hi) / 2
			if proto.Unmarshal(encode(mid), new(agentv1.InvokeRequest)) == nil {
				lo = mid
			} else {
				hi = mid
			}
		}
		if lo < 1000 {
			t.Fatalf("%s: protobuf takes only %d levels", name, lo)
		}
		if sameVerdict(t, name+", deepest taken", encode(lo)) {
			t.Fatalf("%s: %d levels refused", name, lo)
		}
		if !sameVerdict(t, name+", one deeper", encode(hi)) {
			t.Fatalf("%s: %d levels taken", name, hi)
		}
	}
}

// TestFillValuesAsProtobuf decodes a payload whose map entry has no value
// with vtprotobuf's decoder and fillValues, and with protobuf's: the same.
func TestFillValuesAsProtobuf(t *testing.T) {
	entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "empty") // key, no value
	inner := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), entry)    // Struct{fields: [entry]}
	listed := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), inner)   // Value{struct_value}
	list := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), listed)    // ListValue{values: [listed]}
	value := protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), list)     // Value{list_value}
	outer := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "l")
	outer = protowire.AppendBytes(protowire.AppendTag(outer, 2, protowire.BytesType), value)
	payload := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), outer)
	payload = protowire.AppendBytes(protowire.AppendTag(payload, 1, protowire.BytesType), entry)
	b := protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), payload) // InvokeRequest.payload

	if err := checkInvokeRequest(b); err != nil {
		t.Fatal(err)
	}
	want := new(agentv1.InvokeRequest)
	if err := proto.Unmarshal(b, want); err != nil {
		t.Fatal(err)
	}
	got := new(agentv1.InvokeRequest)
	if err := got.UnmarshalVT(b); err != nil {
		t.Fatal(err)
	}
	if got.GetPayload().GetFields()["empty"] != nil {
		t.Fatal("vtprotobuf's decoder now fills values itself; fillValues can go")
	}
	fillValues(got.GetPayload())
	if !proto.Equal(got, want) {
		t.Fatalf("got %v, protobuf's decoder %v", got, want)
	}
}
