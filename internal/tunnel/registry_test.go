package tunnel

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRegisterRejectsDuplicatesAndInterfaces(t *testing.T) {
	reg := NewHandlerRegistry()
	echo := func(_ context.Context, s *wrapperspb.StringValue) (*wrapperspb.StringValue, error) { return s, nil }
	if err := Register(reg, echo); err != nil {
		t.Fatal(err)
	}
	if err := Register(reg, echo); err == nil {
		t.Fatal("second handler for the same request type was accepted")
	}
	if err := Register(reg, func(context.Context, proto.Message) (*emptypb.Empty, error) { return nil, nil }); err == nil {
		t.Fatal("handler keyed by an interface type was accepted")
	}
	if err := Register[*emptypb.Empty, *emptypb.Empty](reg, nil); err == nil {
		t.Fatal("nil handler was accepted")
	}
	if got := reg.Names(); !slices.Equal(got, []string{"google.protobuf.StringValue"}) {
		t.Fatalf("Names() = %v", got)
	}
}

func TestRegisterRawPassesRequestsEncoded(t *testing.T) {
	reg := NewHandlerRegistry()
	var got []byte
	relay := func(_ context.Context, a *anypb.Any) (*anypb.Any, error) {
		got = a.GetValue()
		return mustAny(t, wrapperspb.String("relayed")), nil
	}
	if err := RegisterRaw(reg, "google.protobuf.StringValue", relay); err != nil {
		t.Fatal(err)
	}
	if err := RegisterRaw(reg, "google.protobuf.StringValue", relay); err == nil {
		t.Fatal("second raw handler for the same request type was accepted")
	}
	if err := Register(reg, func(_ context.Context, s *wrapperspb.StringValue) (*wrapperspb.StringValue, error) { return s, nil }); err == nil {
		t.Fatal("typed handler for a type with a raw handler was accepted")
	}
	if err := RegisterRaw(reg, "not a name", relay); err == nil {
		t.Fatal("invalid message name was accepted")
	}
	if err := RegisterRaw(reg, "google.protobuf.Empty", func(context.Context, *anypb.Any) (*anypb.Any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	// The raw handler sees the request bytes as sent, even ones its type
	// would not decode.
	req := mustAny(t, wrapperspb.String("x"))
	req.Value = append(req.Value, 0xff)
	resp, st := reg.dispatch(context.Background(), req)
	if st != nil || string(got) != string(req.Value) || resp.MessageName() != "google.protobuf.StringValue" {
		t.Fatalf("raw dispatch = %v, %v; handler saw %x, want %x", resp, st, got, req.Value)
	}
	if _, st := reg.dispatch(context.Background(), mustAny(t, &emptypb.Empty{})); codes.Code(st.GetCode()) != codes.Internal {
		t.Fatalf("raw handler returning nothing: %v, want INTERNAL", st)
	}
}

func TestDispatchMapsErrors(t *testing.T) {
	reg := NewHandlerRegistry()
	mustRegister(t, reg, func(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
		return nil, ctx.Err()
	})
	mustRegister(t, reg, func(_ context.Context, _ *wrapperspb.BoolValue) (*wrapperspb.BoolValue, error) {
		return nil, nil // a nil pointer is an empty message, not an error
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, st := reg.dispatch(ctx, mustAny(t, &emptypb.Empty{}))
	if codes.Code(st.GetCode()) != codes.Canceled {
		t.Fatalf("handler returning ctx.Err(): %v, want CANCELED", st)
	}
	resp, st := reg.dispatch(context.Background(), mustAny(t, wrapperspb.Bool(true)))
	if st != nil || resp == nil {
		t.Fatalf("nil message response: %v, %v", resp, st)
	}
	bad := mustAny(t, wrapperspb.Bool(true))
	bad.Value = []byte{0xff}
	_, st = reg.dispatch(context.Background(), bad)
	if codes.Code(st.GetCode()) != codes.InvalidArgument {
		t.Fatalf("undecodable request: %v, want INVALID_ARGUMENT", status.FromProto(st).Err())
	}
}

func TestBackoffBounds(t *testing.T) {
	b := newBackoff(10, 80)
	wantMax := []int64{10, 20, 40, 80, 80, 80}
	for i, hi := range wantMax {
		d := int64(b.next())
		if d < hi/2 || d > hi {
			t.Fatalf("delay %d = %d, want within [%d, %d]", i, d, hi/2, hi)
		}
	}
	b.reset()
	if d := int64(b.next()); d > 10 {
		t.Fatalf("after reset: %d, want <= 10", d)
	}
}

func TestTypeURLIsAnypbs(t *testing.T) {
	for _, m := range []proto.Message{&emptypb.Empty{}, wrapperspb.String("x")} {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := TypeURL(m); got != a.GetTypeUrl() {
			t.Fatalf("TypeURL = %q, anypb.New wrote %q", got, a.GetTypeUrl())
		}
	}
}
