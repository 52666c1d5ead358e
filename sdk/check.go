package sdk

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"github.com/croupier/croupier/internal/wirecheck"
)

var errInvalidUTF8 = errors.New("string field contains invalid UTF-8")

// invokeFields is how checkInvokeRequest checks each length-delimited field
// of an InvokeRequest, read from its descriptor, so a field added to the
// message is checked without a change here (or refused at start, below).
var invokeFields = func() map[protowire.Number]protoreflect.FieldDescriptor {
	out := map[protowire.Number]protoreflect.FieldDescriptor{}
	fields := (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && fd.MapValue().Kind() == protoreflect.StringKind,
			!fd.IsMap() && fd.Kind() == protoreflect.StringKind,
			!fd.IsMap() && fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Struct":
			out[fd.Number()] = fd
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			panic(fmt.Sprintf("sdk: checkInvokeRequest cannot check InvokeRequest.%s", fd.Name()))
		}
	}
	return out
}()

// checkInvokeRequest checks an encoded InvokeRequest for what protobuf's
// decoder refuses and vtprotobuf's takes (tunnel.RegisterVT runs it before
// decoding): malformed data, a string that is not UTF-8 (its own, its
// config's, its payload's), a payload nested past protobuf's recursion
// limit, which vtprotobuf's decoder would follow without one. It also
// refuses a map entry whose key or value is not length-delimited, which
// protobuf's decoder skips and vtprotobuf's misreads (no encoder writes
// one). FuzzCheckInvokeRequest holds what it takes to decode alike with
// both. It allocates nothing.
func checkInvokeRequest(b []byte) error {
	for len(b) > 0 {
		num, typ, v, rest, err := wirecheck.NextField(b)
		if err != nil {
			return err
		}
		b = rest
		fd := invokeFields[num]
		if fd == nil || typ != protowire.BytesType {
			continue // another kind of field, or an unknown one to a decoder
		}
		switch {
		case fd.IsMap(): // v is one entry
			if err := wirecheck.StringMapEntryVT(v); err != nil {
				return fmt.Errorf("%s: %w", fd.Name(), err)
			}
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return fmt.Errorf("%s: %w", fd.Name(), errInvalidUTF8)
			}
		default: // the payload: a Struct in a message decoded on its own
			if err := wirecheck.StructVT(v, 1); err != nil {
				return fmt.Errorf("%s: %w", fd.Name(), err)
			}
		}
	}
	return nil
}

// fillValues gives every field of s without a value an empty Value, as
// protobuf's decoder does and vtprotobuf's does not (it leaves nil where a
// map entry has no value).
func fillValues(s *structpb.Struct) {
	for k, v := range s.GetFields() {
		if v == nil {
			s.Fields[k] = &structpb.Value{}
			continue
		}
		fillValue(v)
	}
}

func fillValue(v *structpb.Value) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		fillValues(k.StructValue)
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			fillValue(e)
		}
	}
}
