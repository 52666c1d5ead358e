package tunnel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// fuzzLimits are small so the fuzzer reaches them.
var fuzzLimits = limits{maxFrameBytes: 512, maxBatchFrames: 8}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func marshalSeed(f *testing.F, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

// FuzzDecodeSendRequest feeds the server's decoder of client batches, the
// input an unauthenticated peer controls.
func FuzzDecodeSendRequest(f *testing.F) {
	resp := &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{
		Id: 7, Result: &tunnelv1.Response_Payload{Payload: mustAny(f, wrapperspb.String("ok"))},
	}}}
	errResp := &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{
		Id: 8, Result: &tunnelv1.Response_Error{Error: status.New(codes.NotFound, "nope").Proto()},
	}}}
	marshalSeed(f, &tunnelv1.LongPollSendRequest{SessionId: "s1", Seq: 1, Frames: []*tunnelv1.ClientToServer{resp, errResp, pingFrame(3)}})
	marshalSeed(f, &tunnelv1.LongPollSendRequest{SessionId: "s1", Seq: 2})
	many := &tunnelv1.LongPollSendRequest{SessionId: "s", Seq: 1}
	for i := range 9 {
		many.Frames = append(many.Frames, pingFrame(uint64(i)))
	}
	marshalSeed(f, many)
	f.Add([]byte{})
	f.Add([]byte{0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSendRequest(b, fuzzLimits)
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("error is not a status: %v", err)
			}
			return
		}
		checkDecodedBatch(t, b, len(m.GetFrames()))
		if m.GetSeq() == 0 || m.GetSessionId() == "" {
			t.Fatalf("accepted a batch without seq or session: %v", m)
		}
		for _, fr := range m.GetFrames() {
			if r := fr.GetResponse(); r != nil && (r.GetId() == 0 || r.GetResult() == nil) {
				t.Fatalf("accepted an invalid response %v", r)
			}
			if proto.Size(fr) > fuzzLimits.maxFrameBytes {
				t.Fatalf("accepted a frame of %d bytes", proto.Size(fr))
			}
		}
	})
}

// FuzzDecodePollResponse feeds the client's decoder of server batches.
func FuzzDecodePollResponse(f *testing.F) {
	req := &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{
		Id: 1, Payload: mustAny(f, wrapperspb.String("x")), TimeoutMs: 500,
	}}}
	cancel := &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Cancel{Cancel: &tunnelv1.Cancel{Id: 1}}}
	welcome := &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Welcome{Welcome: &tunnelv1.Welcome{ConnectionId: "c", MaxFrameBytes: 1024}}}
	marshalSeed(f, &tunnelv1.LongPollPollResponse{Seq: 1, Frames: []*tunnelv1.ServerToClient{welcome, req, cancel, serverPing(2)}})
	marshalSeed(f, &tunnelv1.LongPollPollResponse{})
	f.Add([]byte{0x12, 0x00})

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePollResponse(b, fuzzLimits)
		if err != nil {
			return
		}
		checkDecodedBatch(t, b, len(m.GetFrames()))
		if m.GetSeq() == 0 && len(m.GetFrames()) > 0 {
			t.Fatal("accepted frames without a seq")
		}
		for _, fr := range m.GetFrames() {
			if r := fr.GetRequest(); r != nil && (r.GetId() == 0 || r.GetPayload() == nil || r.GetTimeoutMs() < 0) {
				t.Fatalf("accepted an invalid request %v", r)
			}
		}
	})
}

// FuzzDecodeOpenRequest feeds the decoder of the first message a client sends.
func FuzzDecodeOpenRequest(f *testing.F) {
	marshalSeed(f, &tunnelv1.LongPollOpenRequest{Hello: &tunnelv1.Hello{Name: "agent-1", MaxInFlight: 64, ProtocolVersion: 1}})
	marshalSeed(f, &tunnelv1.LongPollOpenRequest{Hello: &tunnelv1.Hello{Name: "bad\x00name"}})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})

	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeOpenRequest(b)
		if err != nil {
			return
		}
		if len(b) > smallMessageBytes {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if err := validateName(m.GetHello().GetName()); err != nil {
			t.Fatalf("accepted name %q: %v", m.GetHello().GetName(), err)
		}
		if m.GetHello().GetMaxInFlight() > maxInFlightLimit {
			t.Fatalf("accepted max_in_flight %d", m.GetHello().GetMaxInFlight())
		}
	})
}

// checkDecodedBatch asserts the limits hold for an accepted batch.
func checkDecodedBatch(t *testing.T, b []byte, frames int) {
	t.Helper()
	if len(b) > fuzzLimits.maxBatchBytes() {
		t.Fatalf("accepted a batch of %d bytes", len(b))
	}
	if frames > fuzzLimits.maxBatchFrames {
		t.Fatalf("accepted %d frames", frames)
	}
}

// FuzzConnReadFrames feeds the conn transport's frame reader (what a game
// server process sends the agent): it must return frames within the limit
// or a status error that ends the connection (INVALID_ARGUMENT, UNAVAILABLE,
// RESOURCE_EXHAUSTED), never panic or allocate beyond the limit.
func FuzzConnReadFrames(f *testing.F) {
	hello, err := proto.Marshal(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: &tunnelv1.Hello{Name: "gs-1", MaxInFlight: 4}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(binary.AppendUvarint(nil, uint64(len(hello))), hello...))
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{3, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		l := &connLink{r: bufio.NewReader(bytes.NewReader(b)), maxFrame: fuzzLimits.maxFrameBytes}
		for range 64 {
			f := new(tunnelv1.ClientToServer)
			err := l.readFrame(f)
			if err == nil {
				if proto.Size(f) > fuzzLimits.maxFrameBytes {
					t.Fatalf("frame of %d bytes past the limit %d", proto.Size(f), fuzzLimits.maxFrameBytes)
				}
				continue
			}
			switch status.Code(err) {
			case codes.InvalidArgument, codes.Unavailable, codes.ResourceExhausted:
			default:
				t.Fatalf("error %v: want INVALID_ARGUMENT, UNAVAILABLE or RESOURCE_EXHAUSTED", err)
			}
			if cap(l.rbuf) > fuzzLimits.maxFrameBytes {
				t.Fatalf("read buffer of %d bytes past the limit %d", cap(l.rbuf), fuzzLimits.maxFrameBytes)
			}
			return
		}
	})
}
