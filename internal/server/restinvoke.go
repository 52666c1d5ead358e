package server

import (
	"strconv"
	"unicode/utf8"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/invoke"
	"github.com/croupier/croupier/internal/structjson"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"
)

// restMarshaler is the gateway's JSON marshaler with InvokeFunction's answer
// written by hand: protojson's reflection over the response and its result
// (a Struct, a map of messages) was the largest single cost of a REST
// invocation's answer. The document is the one protojson writes with the
// gateway's options (UseProtoNames, EmitUnpopulated: every field, in
// declaration order), without protojson's random insignificant spaces;
// TestRESTInvokeJSONMatchesProtojson holds it to that. Anything the hand
// encoder does not cover goes to protojson, which reports the error.
type restMarshaler struct{ *gwruntime.JSONPb }

// The game server's result reaches it still encoded (direct.Invoke leaves
// it so, see invoke.Materialize) and is written from the bytes
// (structjson.AppendWire); what that does not cover is decoded first.
func (m restMarshaler) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*croupierv1.InvokeFunctionResponse); ok {
		if b, ok := appendInvokeResponse(make([]byte, 0, 256), r); ok {
			return b, nil
		}
		if err := invoke.Materialize(r); err != nil {
			return nil, status.Errorf(codes.Internal, "decode the result of the invocation: %v", err)
		}
	}
	return m.JSONPb.Marshal(v)
}

// appendInvokeResponse appends r as JSON; ok is false when r holds what only
// protojson should judge (unknown fields, invalid UTF-8, a number JSON
// cannot hold).
func appendInvokeResponse(b []byte, r *croupierv1.InvokeFunctionResponse) (_ []byte, ok bool) {
	raw, ok := encodedResult(r)
	if !ok {
		return b, false
	}
	b = append(b, `{"success":`...)
	b = strconv.AppendBool(b, r.GetSuccess())
	b = append(b, `,"result":`...)
	if raw != nil {
		if b, ok = structjson.AppendWire(b, raw); !ok {
			return b, false
		}
	} else if b, ok = appendResult(b, r.GetResult()); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, `,"error":`, r.GetError()); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, `,"error_code":`, r.GetErrorCode()); !ok {
		return b, false
	}
	if b, ok = appendStringField(b, `,"instance":`, r.GetInstance()); !ok {
		return b, false
	}
	b = append(b, `,"results":[`...)
	for i, ir := range r.GetResults() {
		if len(ir.ProtoReflect().GetUnknown()) > 0 {
			return b, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendStringField(b, `{"instance":`, ir.GetInstance()); !ok {
			return b, false
		}
		b = strconv.AppendBool(append(b, `,"success":`...), ir.GetSuccess())
		if b, ok = appendResult(append(b, `,"result":`...), ir.GetResult()); !ok {
			return b, false
		}
		if b, ok = appendStringField(b, `,"error":`, ir.GetError()); !ok {
			return b, false
		}
		if b, ok = appendStringField(b, `,"error_code":`, ir.GetErrorCode()); !ok {
			return b, false
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if b, ok = appendStringField(b, `,"approval_id":`, r.GetApprovalId()); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// encodedResult returns the result r carries still encoded (its only
// unknown field), nil if none; ok is false if r has other unknown fields.
func encodedResult(r *croupierv1.InvokeFunctionResponse) (raw []byte, ok bool) {
	u := r.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil, true
	}
	num, typ, n := protowire.ConsumeTag(u)
	if n < 0 || num != 2 || typ != protowire.BytesType || r.GetResult() != nil {
		return nil, false
	}
	raw, m := protowire.ConsumeBytes(u[n:])
	if m < 0 || n+m != len(u) {
		return nil, false
	}
	return raw, true
}

func appendResult(b []byte, s *structpb.Struct) ([]byte, bool) {
	if s == nil {
		return append(b, "null"...), true
	}
	if len(s.ProtoReflect().GetUnknown()) > 0 {
		return b, false
	}
	b, err := structjson.AppendStructStrict(b, s)
	return b, err == nil
}

// appendStringField appends name and s; protojson refuses a string field
// that is not valid UTF-8, so such a value is left to it.
func appendStringField(b []byte, name, s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return b, false
	}
	return structjson.AppendString(append(b, name...), s), true
}
