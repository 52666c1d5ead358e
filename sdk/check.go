package sdk

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
)

var (
	errInvalidUTF8 = errors.New("string field contains invalid UTF-8")
	errTooDeep     = errors.New("exceeded maximum recursion depth")
)

// checkInvokeRequest refuses what protobuf's decoder would have refused in
// an InvokeRequest that vtprotobuf's decoded (tunnel.RegisterVT): a string
// that is not UTF-8, or a payload nested deeper than protobuf's recursion
// limit. TestCheckInvokeRequestCoversEveryString fails when a string field
// is added to InvokeRequest and not here.
func checkInvokeRequest(r *agentv1.InvokeRequest) error {
	for _, s := range [...]string{r.GetInvocationId(), r.GetGameId(), r.GetEnv(), r.GetFunctionId(),
		r.GetInstanceId(), r.GetIdempotencyKey(), r.GetActor()} {
		if !utf8.ValidString(s) {
			return errInvalidUTF8
		}
	}
	for k, v := range r.GetConfig() {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return errInvalidUTF8
		}
	}
	if p := r.GetPayload(); p != nil {
		return checkStruct(p, 2) // InvokeRequest, then the Struct
	}
	return nil
}

// checkStruct checks s, a message at nesting depth depth, and everything in
// it; each Struct, Value and ListValue is one level, as protobuf's decoder
// counts them.
func checkStruct(s *structpb.Struct, depth int) error {
	if depth > protowire.DefaultRecursionLimit {
		return errTooDeep
	}
	for k, v := range s.GetFields() {
		if !utf8.ValidString(k) {
			return errInvalidUTF8
		}
		if err := checkValue(v, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v *structpb.Value, depth int) error {
	if depth > protowire.DefaultRecursionLimit {
		return errTooDeep
	}
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return errInvalidUTF8
		}
	case *structpb.Value_StructValue:
		return checkStruct(k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if depth+1 > protowire.DefaultRecursionLimit {
			return errTooDeep
		}
		for _, e := range k.ListValue.GetValues() {
			if err := checkValue(e, depth+2); err != nil {
				return err
			}
		}
	}
	return nil
}
