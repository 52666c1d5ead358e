package invoke

import (
	"errors"
	"fmt"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/tunnel"
	"github.com/croupier/croupier/internal/wirecheck"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// A game server's result (a google.protobuf.Struct) reaches the caller of
// InvokeFunction still encoded: the server checks that it is a well-formed
// Struct but does not build it, because decoding a Struct (a map of
// messages) and encoding it again is the largest part of what the server
// spends on an answer. DecodeResponse keeps the result's field as an
// unknown field of the InvokeResponse; send moves it to the same field
// number of InvokeFunctionResponse (2 in both messages), which proto
// encodes verbatim, so a gRPC caller receives the result the game server
// wrote. A response that is not sent as protobuf — REST turns it into JSON —
// must be Materialized first.

// resultField is the field number of result in both InvokeResponse and
// InvokeFunctionResponse.
const resultField protowire.Number = 2

func init() {
	// The shortcut depends on these numbers; a proto change must not break
	// it silently.
	for m, num := range map[proto.Message]protowire.Number{&agentv1.InvokeResponse{}: resultField,
		&croupierv1.InvokeFunctionResponse{}: resultField, &croupierv1.InstanceResult{}: instanceResultField} {
		fd := m.ProtoReflect().Descriptor().Fields().ByNumber(num)
		if fd == nil || fd.Name() != "result" || fd.Message().FullName() != "google.protobuf.Struct" {
			panic(fmt.Sprintf("invoke: field %d of %s is not result (google.protobuf.Struct)", num, m.ProtoReflect().Descriptor().FullName()))
		}
	}
}

var invokeResponseType = tunnel.TypeURL(&agentv1.InvokeResponse{})

// DecodeResponse decodes an agent's encoded InvokeResponse, leaving its
// result encoded (after checking it is a well-formed Struct) in the
// message's unknown fields; GetResult is nil then. agent names the sender
// for errors, which are INTERNAL, as for any response the tunnel cannot
// decode.
func DecodeResponse(a *anypb.Any, agent string) (*agentv1.InvokeResponse, error) {
	if a.GetTypeUrl() != invokeResponseType {
		return nil, status.Errorf(codes.Internal, "tunnel client %q answered %s, want %s", agent, a.GetTypeUrl(), invokeResponseType)
	}
	b := a.GetValue()
	// The fields other than result are decoded in place, one at a time
	// (merging, as a decoder does with fields that come apart), rather than
	// copied together first; the result is kept as the bytes it came in,
	// copied only when it comes in several pieces.
	r := &agentv1.InvokeResponse{}
	merge := proto.UnmarshalOptions{Merge: true}
	var result []byte
	for i := 0; i < len(b); {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return nil, badResponse(agent, protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return nil, badResponse(agent, errors.New("invalid field number"))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[i+n:])
		if m < 0 {
			return nil, badResponse(agent, protowire.ParseError(m))
		}
		field := b[i : i+n+m : i+n+m]
		if num == resultField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(field[n:])
			if err := wirecheck.Struct(v, 2); err != nil { // at most InvokeFunctionResponse.results[].result
				return nil, badResponse(agent, fmt.Errorf("result: %w", err))
			}
			if result == nil {
				result = field // its capacity ends with it: appending to it copies
			} else {
				result = append(result, field...) // repeated occurrences merge, as proto does
			}
		} else if err := merge.Unmarshal(field, r); err != nil {
			return nil, badResponse(agent, err)
		}
		i += n + m
	}
	if len(result) > 0 {
		pr := r.ProtoReflect()
		if u := pr.GetUnknown(); len(u) > 0 {
			result = append(u, result...)
		}
		pr.SetUnknown(result) // a's bytes: a decoded message owns them, and nothing writes them again
	}
	return r, nil
}

func badResponse(agent string, err error) error {
	return status.Errorf(codes.Internal, "tunnel client %q answered a malformed %s: %v", agent, invokeResponseType, err)
}

// encodedResult returns r's result field still encoded, nil if it has none.
func encodedResult(r *agentv1.InvokeResponse) []byte {
	var out []byte
	b := r.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, _, n := protowire.ConsumeField(b)
		if n < 0 {
			return out
		}
		if num == resultField {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// instanceResultField is the field number of result in InstanceResult: a
// broadcast passes each instance's result through as bytes too, under this
// number.
const instanceResultField protowire.Number = 3

// retag returns encoded length-delimited fields (an encodedResult) under
// field number num.
func retag(fields []byte, num protowire.Number) []byte {
	out := make([]byte, 0, len(fields)+2)
	for len(fields) > 0 {
		_, _, n := protowire.ConsumeTag(fields)
		v, m := protowire.ConsumeBytes(fields[n:])
		if n < 0 || m < 0 {
			return out // encodedResult returns whole fields only
		}
		out = protowire.AppendBytes(protowire.AppendTag(out, num, protowire.BytesType), v)
		fields = fields[n+m:]
	}
	return out
}

// Materialize decodes the fields m still holds encoded (the unknown fields
// a result passed through as bytes left) into m, so that m can be written
// as JSON. It is a no-op for a message without unknown fields.
func Materialize(m proto.Message) error {
	if resp, ok := m.(*croupierv1.InvokeFunctionResponse); ok {
		for _, res := range resp.GetResults() { // a broadcast's, see retag
			if err := Materialize(res); err != nil {
				return err
			}
		}
	}
	r := m.ProtoReflect()
	raw := r.GetUnknown()
	if len(raw) == 0 {
		return nil
	}
	r.SetUnknown(nil)
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(raw, m)
}
