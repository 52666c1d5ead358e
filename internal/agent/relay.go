package agent

import (
	"context"
	"fmt"
	"unicode/utf8"

	agentv1 "github.com/croupier/croupier/api/croupier/agent/v1"
	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// handleInvoke is relayInvoke for a decoded request (in-process callers and
// tests; the tunnel registers relayInvoke itself).
func (a *Agent) handleInvoke(ctx context.Context, req *agentv1.InvokeRequest) (*agentv1.InvokeResponse, error) {
	in, err := anypb.New(req)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encoding invoke request: %v", err)
	}
	out, err := a.relayInvoke(ctx, in)
	if err != nil {
		return nil, err
	}
	resp := &agentv1.InvokeResponse{}
	if err := out.UnmarshalTo(resp); err != nil {
		return nil, status.Errorf(codes.Internal, "decoding invoke response: %v", err)
	}
	return resp, nil
}

// relayInvoke passes an encoded InvokeRequest to the instance that serves
// it and the instance's encoded answer back, with the instance id added.
// It reads only the two routing fields of the request and decodes neither
// the payload nor the result: on this hop, decoding and re-encoding them
// would cost more than the hop itself.
func (a *Agent) relayInvoke(ctx context.Context, in *anypb.Any) (*anypb.Any, error) {
	fn, inst, err := invokeRoute(in.GetValue())
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	enabled, known := a.enabled[fn]
	a.mu.RUnlock()
	if known && !enabled {
		return nil, apierr.New(codes.FailedPrecondition, apierr.CodeFunctionDisabled, "function "+fn+" is disabled on this agent")
	}
	id, ok := a.instances.pick(inst, fn)
	if !ok {
		return nil, apierr.New(codes.Unavailable, apierr.CodeNoInstance,
			fmt.Sprintf("no instance on agent %s serves %s (instance %q)", a.cfg.ID, fn, inst))
	}
	out, err := a.sdkTunnel.CallAny(ctx, id, in)
	if err != nil {
		return nil, err
	}
	if out.MessageName() != invokeResponseName {
		return nil, status.Errorf(codes.Internal, "instance %s answered %s to an invoke request, want %s", id, out.MessageName(), invokeResponseName)
	}
	// A field that occurs twice decodes as its last occurrence, so
	// appending instance_id sets it whatever the instance wrote.
	out.Value = protowire.AppendString(protowire.AppendTag(out.Value, invokeResponseInstanceField, protowire.BytesType), id)
	return out, nil
}

// Names and field numbers of the relayed messages, read once from the
// generated descriptors and never written.
var (
	invokeRequestName           = (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().FullName()
	invokeResponseName          = (&agentv1.InvokeResponse{}).ProtoReflect().Descriptor().FullName()
	invokeRequestFields         = (&agentv1.InvokeRequest{}).ProtoReflect().Descriptor().Fields()
	invokeFunctionField         = invokeRequestFields.ByName("function_id").Number()
	invokeInstanceField         = invokeRequestFields.ByName("instance_id").Number()
	invokeResponseInstanceField = (&agentv1.InvokeResponse{}).ProtoReflect().Descriptor().Fields().ByName("instance_id").Number()
)

// invokeRoute reads function_id and instance_id from an encoded
// InvokeRequest, skipping every other field.
func invokeRoute(b []byte) (fn, instance string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", status.Errorf(codes.InvalidArgument, "malformed invoke request: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if (num == invokeFunctionField || num == invokeInstanceField) && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", "", status.Errorf(codes.InvalidArgument, "malformed invoke request: %v", protowire.ParseError(m))
			}
			if !utf8.Valid(v) {
				return "", "", status.Error(codes.InvalidArgument, "malformed invoke request: function_id or instance_id is not UTF-8")
			}
			if num == invokeFunctionField {
				fn = string(v)
			} else {
				instance = string(v)
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", "", status.Errorf(codes.InvalidArgument, "malformed invoke request: %v", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return fn, instance, nil
}
