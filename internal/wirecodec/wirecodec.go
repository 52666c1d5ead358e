// Package wirecodec makes a request that does not decode a client error.
//
// grpc-go answers every decoding failure with INTERNAL ("failed to
// unmarshal the received message"), whatever the codec returns — so a
// payload nested past protobuf's recursion limit (about 5,000 levels of
// JSON objects), or any malformed body, reads as a server bug. Codec is the
// proto codec, except that such a request decodes as an empty message
// carrying a marker; the interceptors refuse a marked request with
// INVALID_ARGUMENT before any authentication or handler work. Both must be
// installed together (Options does).
package wirecodec

import (
	"context"
	"fmt"

	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// markerField is the unknown field that marks an undecodable request: the
// highest field number, which no Croupier message uses.
const markerField protowire.Number = protowire.MaxValidNumber

// maxReason bounds the decoder's message quoted back to the caller.
const maxReason = 160

// Codec is the server's proto codec (install it with Options).
type Codec struct{ base encoding.CodecV2 }

// NewCodec returns the codec over grpc-go's proto codec.
func NewCodec() Codec { return Codec{base: encoding.GetCodecV2(protocodec.Name)} }

// Name is "proto": it replaces the default codec for the same content type.
func (Codec) Name() string { return protocodec.Name }

// Marshal is the proto codec's.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

// Unmarshal decodes data into v; when data does not decode, v is reset and
// marked, and the interceptors refuse it.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	reason := err.Error()
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "…"
	}
	proto.Reset(m)
	b := protowire.AppendTag(nil, markerField, protowire.BytesType)
	m.ProtoReflect().SetUnknown(protowire.AppendString(b, reason))
	return nil
}

// Undecodable returns INVALID_ARGUMENT for a request Codec could not
// decode, nil for any other.
func Undecodable(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	b := m.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if num == markerField && typ == protowire.BytesType {
			reason, _ := protowire.ConsumeString(b)
			return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				fmt.Sprintf("the request does not decode (%s); payloads may nest objects and arrays at most 64 levels deep", reason),
				"reason", reason)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil
		}
		b = b[n:]
	}
	return nil
}

// UnaryInterceptor refuses undecodable requests.
func UnaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := Undecodable(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// StreamInterceptor refuses undecodable stream messages.
func StreamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, checkedStream{ss})
}

type checkedStream struct{ grpc.ServerStream }

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return Undecodable(m)
}

// Options installs the codec and its interceptors; pass them before any
// other interceptor so an undecodable request costs no authentication.
func Options() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(NewCodec()),
		grpc.ChainUnaryInterceptor(UnaryInterceptor),
		grpc.ChainStreamInterceptor(StreamInterceptor),
	}
}
