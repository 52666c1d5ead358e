package tunnel

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// HandlerRegistry maps request message types to the functions a client
// serves. One registry may back several clients; registering while clients
// run is safe.
type HandlerRegistry struct {
	mu       sync.RWMutex
	handlers map[protoreflect.FullName]handler
}

// handler runs one registered function on an encoded request.
type handler func(ctx context.Context, req *anypb.Any) (*anypb.Any, error)

// NewHandlerRegistry returns an empty registry.
func NewHandlerRegistry() *HandlerRegistry {
	return &HandlerRegistry{handlers: make(map[protoreflect.FullName]handler)}
}

// Register adds h as the handler for requests of type Req, keyed by Req's
// full message name. Registering a second handler for the same type is an
// error. Req and Resp must be concrete generated message types (pointers).
func Register[Req, Resp proto.Message](r *HandlerRegistry, h func(context.Context, Req) (Resp, error)) error {
	var zero Req
	if any(zero) == nil {
		return fmt.Errorf("tunnel: Register needs a concrete request message type, not an interface")
	}
	if h == nil {
		return fmt.Errorf("tunnel: nil handler")
	}
	reqType := zero.ProtoReflect().Type()
	name := reqType.Descriptor().FullName()
	fn := func(ctx context.Context, a *anypb.Any) (*anypb.Any, error) {
		req := reqType.New().Interface()
		if err := a.UnmarshalTo(req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "decoding %s: %v", name, err)
		}
		resp, err := h(ctx, req.(Req))
		if err != nil {
			return nil, err
		}
		if any(resp) == nil {
			return nil, status.Errorf(codes.Internal, "handler for %s returned no response and no error", name)
		}
		out, err := anypb.New(resp)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encoding response to %s: %v", name, err)
		}
		return out, nil
	}
	return r.add(name, fn)
}

// TypeURL is the type URL an anypb.Any holding a message of m's type has,
// as anypb.New writes it: for Anys built from bytes encoded otherwise.
func TypeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// vtMessage is a message with vtprotobuf's generated codec
// (buf.gen.vtproto.yaml).
type vtMessage interface {
	proto.Message
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// RegisterVT is Register for a request and a response with vtprotobuf's
// generated codec, which decodes and encodes the agent's InvokeRequest and
// InvokeResponse ~4× faster than protobuf's (sdk's BenchmarkInvokeCodec, with the checks).
// That decoder does not check what protobuf's does — that the data is well
// formed, that strings are UTF-8, how deep messages nest (it recurses
// without a limit) — so check must, on the encoded request before it is
// decoded; a request it refuses is INVALID_ARGUMENT, as one protobuf's
// decoder refuses. The response is not checked here: its receiver decodes
// it with protobuf's decoder or checks it (invoke.DecodeResponse).
func RegisterVT[T any, Req interface {
	*T
	vtMessage
}, Resp vtMessage](r *HandlerRegistry, h func(context.Context, Req) (Resp, error), check func(encoded []byte) error) error {
	var zero Resp
	if any(zero) == nil {
		return fmt.Errorf("tunnel: RegisterVT needs a concrete response message type, not an interface")
	}
	if h == nil || check == nil {
		return fmt.Errorf("tunnel: RegisterVT needs a handler and a check")
	}
	name := Req(new(T)).ProtoReflect().Descriptor().FullName()
	respURL := TypeURL(zero)
	return r.add(name, func(ctx context.Context, a *anypb.Any) (*anypb.Any, error) {
		// dispatch found this handler by the type URL's name: a is a Req.
		if err := check(a.GetValue()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "decoding %s: %v", name, err)
		}
		req := Req(new(T))
		if err := req.UnmarshalVT(a.GetValue()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "decoding %s: %v", name, err)
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		b, err := resp.MarshalVT()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encoding response to %s: %v", name, err)
		}
		return &anypb.Any{TypeUrl: respURL, Value: b}, nil
	})
}

// add registers fn for requests of type name; a second handler for a type
// is an error.
func (r *HandlerRegistry) add(name protoreflect.FullName, fn handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[name]; dup {
		return fmt.Errorf("tunnel: a handler for %s is already registered", name)
	}
	r.handlers[name] = fn
	return nil
}

// RegisterRaw adds h as the handler for requests whose type is name, given
// and answered still encoded. It is for relays that forward a request
// without looking inside it (the agent passing an invocation to a game
// server): decoding and re-encoding the payload would be their main cost.
// h must answer with the Any of a message of the type its caller expects.
func RegisterRaw(r *HandlerRegistry, name protoreflect.FullName, h func(context.Context, *anypb.Any) (*anypb.Any, error)) error {
	if !name.IsValid() {
		return fmt.Errorf("tunnel: RegisterRaw needs a full message name, got %q", name)
	}
	if h == nil {
		return fmt.Errorf("tunnel: nil handler")
	}
	return r.add(name, func(ctx context.Context, a *anypb.Any) (*anypb.Any, error) {
		out, err := h(ctx, a)
		if err == nil && out == nil {
			return nil, status.Errorf(codes.Internal, "handler for %s returned no response and no error", name)
		}
		return out, err
	})
}

// Names returns the full names of the request types that have handlers,
// sorted.
func (r *HandlerRegistry) Names() []string {
	r.mu.RLock()
	out := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		out = append(out, string(n))
	}
	r.mu.RUnlock()
	slices.Sort(out)
	return out
}

// dispatch runs the handler for req and returns either the encoded response
// or the status to send back. A panicking handler yields INTERNAL instead of
// taking the process down.
func (r *HandlerRegistry) dispatch(ctx context.Context, req *anypb.Any) (resp *anypb.Any, st *spb.Status) {
	url := req.GetTypeUrl()
	name := protoreflect.FullName(url[strings.LastIndexByte(url, '/')+1:])
	r.mu.RLock()
	h := r.handlers[name]
	r.mu.RUnlock()
	if h == nil {
		return nil, status.Newf(codes.Unimplemented, "no tunnel handler for %s", name).Proto()
	}

	defer func() {
		if p := recover(); p != nil {
			resp, st = nil, status.Newf(codes.Internal, "tunnel handler for %s panicked: %v", name, p).Proto()
		}
	}()
	out, err := h(ctx, req)
	if err != nil {
		return nil, handlerStatus(err)
	}
	return out, nil
}
