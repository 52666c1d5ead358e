package tunnel

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Result is one client's outcome in CallAll.
type Result struct {
	Client string
	Resp   proto.Message
	Err    error
}

// TypedResult is one client's outcome in the generic CallAll.
type TypedResult[Resp proto.Message] struct {
	Client string
	Resp   Resp
	Err    error
}

// Call runs the handler registered for req's type on the named client and
// returns its response. The error is always a gRPC status: the handler's own
// status, UNAVAILABLE if the client is not connected or disconnects
// mid-call, DEADLINE_EXCEEDED or CANCELED when ctx ends (the handler's
// context on the client ends too). The response type must be linked into
// this binary; the generic Call avoids that requirement.
func (s *Server) Call(ctx context.Context, client string, req proto.Message) (proto.Message, error) {
	payload, err := marshalRequest(req)
	if err != nil {
		return nil, err
	}
	a, err := s.callPayload(ctx, client, payload)
	if err != nil {
		return nil, err
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "decoding %s from tunnel client %q: %v", a.GetTypeUrl(), client, err)
	}
	return m, nil
}

// CallAny is Call with the request and the response left encoded, for
// relays that forward them (see RegisterRaw). The response is whatever the
// client answered; the caller checks its type.
func (s *Server) CallAny(ctx context.Context, client string, req *anypb.Any) (*anypb.Any, error) {
	if req == nil || req.GetTypeUrl() == "" {
		return nil, status.Error(codes.InvalidArgument, "nil tunnel request")
	}
	return s.callPayload(ctx, client, req)
}

// CallAll calls every connected client at once and returns one Result per
// client, sorted by client name, when all have answered or ctx has ended; a
// client that does not answer in time gets DEADLINE_EXCEEDED without
// delaying the others' results.
func (s *Server) CallAll(ctx context.Context, req proto.Message) []Result {
	raw := s.callAll(ctx, req)
	out := make([]Result, len(raw))
	for i, r := range raw {
		out[i] = Result{Client: r.client, Err: r.err}
		if r.err == nil {
			m, err := r.payload.UnmarshalNew()
			if err != nil {
				err = status.Errorf(codes.Internal, "decoding %s from tunnel client %q: %v", r.payload.GetTypeUrl(), r.client, err)
			}
			out[i].Resp, out[i].Err = m, err
		}
	}
	return out
}

// Call is Server.Call with the response decoded as Resp.
func Call[Resp proto.Message](ctx context.Context, s *Server, client string, req proto.Message) (Resp, error) {
	var zero Resp
	payload, err := marshalRequest(req)
	if err != nil {
		return zero, err
	}
	a, err := s.callPayload(ctx, client, payload)
	if err != nil {
		return zero, err
	}
	return unmarshalAs[Resp](a, client)
}

// CallAll is Server.CallAll with the responses decoded as Resp.
func CallAll[Resp proto.Message](ctx context.Context, s *Server, req proto.Message) []TypedResult[Resp] {
	raw := s.callAll(ctx, req)
	out := make([]TypedResult[Resp], len(raw))
	for i, r := range raw {
		out[i] = TypedResult[Resp]{Client: r.client, Err: r.err}
		if r.err == nil {
			out[i].Resp, out[i].Err = unmarshalAs[Resp](r.payload, r.client)
		}
	}
	return out
}

type rawResult struct {
	client  string
	payload *anypb.Any
	err     error
}

// callAll marshals req once and calls every connected client concurrently.
func (s *Server) callAll(ctx context.Context, req proto.Message) []rawResult {
	names := s.Clients()
	out := make([]rawResult, len(names))
	payload, err := marshalRequest(req)
	if err != nil {
		for i, name := range names {
			out[i] = rawResult{client: name, err: err}
		}
		return out
	}
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			a, err := s.callPayload(ctx, name, payload)
			out[i] = rawResult{client: name, payload: a, err: err}
		})
	}
	wg.Wait()
	return out
}

func (s *Server) callPayload(ctx context.Context, client string, payload *anypb.Any) (*anypb.Any, error) {
	c := s.lookup(client)
	if c == nil {
		return nil, notSent(status.Errorf(codes.Unavailable, "tunnel client %q is not connected", client))
	}
	if ctx.Err() != nil {
		return nil, notSent(ctxError(ctx))
	}
	if size := anySize(payload); size > c.maxFrame {
		return nil, notSent(status.Errorf(codes.ResourceExhausted, "request of %d bytes exceeds the tunnel frame limit of %d", size, c.maxFrame))
	}
	ctx, span, md := startCallSpan(ctx, s.tracer, client, payload)
	a, err := c.call(ctx, payload, md)
	if span != nil || s.opts.Metrics != nil {
		code := status.Code(err)
		s.opts.Metrics.Call(code)
		endSpan(span, code, err)
	}
	return a, err
}

func marshalRequest(req proto.Message) (*anypb.Any, error) {
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "nil tunnel request")
	}
	a, err := anypb.New(req)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "encoding tunnel request: %v", err)
	}
	return a, nil
}

// anySize is an upper bound of the frame that carries a: the Any plus the
// request envelope (id, timeout, tags).
func anySize(a *anypb.Any) int {
	const envelope = 64
	return len(a.GetValue()) + len(a.GetTypeUrl()) + envelope
}

func unmarshalAs[Resp proto.Message](a *anypb.Any, client string) (Resp, error) {
	var zero Resp
	if any(zero) == nil {
		// Resp is an interface type; only the registry can name the type.
		m, err := a.UnmarshalNew()
		if err != nil {
			return zero, status.Errorf(codes.Internal, "decoding %s from tunnel client %q: %v", a.GetTypeUrl(), client, err)
		}
		r, ok := m.(Resp)
		if !ok {
			return zero, status.Errorf(codes.Internal, "tunnel client %q answered %s, which is not the expected type", client, a.GetTypeUrl())
		}
		return r, nil
	}
	m := zero.ProtoReflect().New().Interface()
	if err := a.UnmarshalTo(m); err != nil {
		return zero, status.Errorf(codes.Internal, "tunnel client %q answered %s, want %s: %v", client, a.GetTypeUrl(), m.ProtoReflect().Descriptor().FullName(), err)
	}
	return m.(Resp), nil
}
