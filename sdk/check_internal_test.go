package sdk

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protopath"
	"google.golang.org/protobuf/reflect/protorange"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
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
// protobuf's decoder takes, nested in objects, in lists, and in lists under
// one object (each object level is three messages and each list level two,
// so the three reach the limit at different remainders), and checks
// checkInvokeRequest takes it and refuses one level more.
func TestCheckInvokeRequestDepthMatchesProtobuf(t *testing.T) {
	object := func(v *structpb.Value) *structpb.Value {
		return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
	}
	list := func(v *structpb.Value) *structpb.Value {
		return structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
	}
	for name, c := range map[string]struct {
		wrap  func(*structpb.Value) *structpb.Value
		outer int // object levels around the lot
	}{
		"objects": {object, 0}, "lists": {list, 0}, "lists under an object": {list, 1}, "lists under two objects": {list, 2},
	} {
		encode := func(levels int) []byte {
			v := structpb.NewNullValue()
			for range levels {
				v = c.wrap(v)
			}
			for range c.outer {
				v = object(v)
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

// FuzzCheckInvokeRequest: what checkInvokeRequest takes, protobuf's decoder
// takes, and vtprotobuf's decodes (then fillValues) to the same request or
// refuses. Unknown fields are left out of the comparison: vtprotobuf's Struct
// drops them.
func FuzzCheckInvokeRequest(f *testing.F) {
	valid, _ := proto.Marshal(&agentv1.InvokeRequest{FunctionId: "f", Config: map[string]string{"k": "v"},
		Payload: &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewListValue(&structpb.ListValue{
			Values: []*structpb.Value{structpb.NewStringValue("x"), structpb.NewNumberValue(1)}})}}})
	f.Add(valid)
	// A config entry whose key is a varint: protobuf skips it, vtprotobuf
	// reads a string.
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), []byte{0x08, 0x03, 0xf8, 0x01, 0x00, 0x12, 0x01, 'v'}))
	// A payload entry whose value is a varint followed by bytes protobuf
	// skips and vtprotobuf reads as the value.
	list := []byte{0x32, 0x00} // Value{list_value: {}}
	entry := append([]byte{0x0a, 0x01, 'k', 0x10, byte(len(list))}, list...)
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), entry)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkInvokeRequest(b) != nil {
			return
		}
		want := new(agentv1.InvokeRequest)
		if err := proto.Unmarshal(b, want); err != nil {
			t.Fatalf("checkInvokeRequest took what protobuf's decoder refuses: %v", err)
		}
		got := new(agentv1.InvokeRequest)
		if got.UnmarshalVT(b) != nil {
			return // refused: stricter than protobuf, never looser
		}
		fillValues(got.GetPayload())
		discardUnknown(got)
		discardUnknown(want)
		if !proto.Equal(got, want) {
			t.Fatalf("vtprotobuf decoded %v, protobuf %v", got, want)
		}
	})
}

func discardUnknown(m proto.Message) {
	_ = protorange.Range(m.ProtoReflect(), func(v protopath.Values) error {
		if msg, ok := v.Index(-1).Value.Interface().(protoreflect.Message); ok && len(msg.GetUnknown()) > 0 {
			msg.SetUnknown(nil)
		}
		return nil
	})
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

// BenchmarkInvokeCodec is what the SDK does around a handler with each
// codec: decode the request, encode the response — protobuf's, against
// vtprotobuf's with the checks it needs (checkInvokeRequest, fillValues).
//
//	go test -run '^$' -bench InvokeCodec -benchmem ./sdk/
func BenchmarkInvokeCodec(b *testing.B) {
	payload, err := structpb.NewStruct(map[string]any{"player_id": "p1"})
	if err != nil {
		b.Fatal(err)
	}
	req, err := anypb.New(&agentv1.InvokeRequest{InvocationId: "inv-0123456789", GameId: "demo", Env: "dev", FunctionId: "player.get",
		InstanceId: "gs-1", Payload: payload, Actor: "operator:bench"})
	if err != nil {
		b.Fatal(err)
	}
	result, err := structpb.NewStruct(map[string]any{"id": "p1", "name": "Alice", "level": 12, "gold": 3400,
		"items": []any{"sword", "shield", "potion"}, "mail": []any{map[string]any{"from": "gm", "body": "hello", "at": 1700000000}}})
	if err != nil {
		b.Fatal(err)
	}
	resp := &agentv1.InvokeResponse{Success: true, Result: result, InstanceId: "gs-1"}
	b.Run("protobuf", func(b *testing.B) {
		for b.Loop() {
			r := new(agentv1.InvokeRequest)
			if err := req.UnmarshalTo(r); err != nil {
				b.Fatal(err)
			}
			if _, err := anypb.New(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vtprotobuf+checks", func(b *testing.B) {
		for b.Loop() {
			if err := checkInvokeRequest(req.GetValue()); err != nil {
				b.Fatal(err)
			}
			r := new(agentv1.InvokeRequest)
			if err := r.UnmarshalVT(req.GetValue()); err != nil {
				b.Fatal(err)
			}
			fillValues(r.GetPayload())
			if _, err := resp.MarshalVT(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
