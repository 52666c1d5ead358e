package tunnel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
)

// frameBytes is m as the conn transport sends it: its length, then m.
func frameBytes(t *testing.T, m frame) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{}.Marshal(m)
	if err != nil {
		// protobuf's encoder refuses invalid UTF-8; vtprotobuf's does not.
		if b, err = m.(interface{ MarshalVT() ([]byte, error) }).MarshalVT(); err != nil {
			t.Fatal(err)
		}
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func readOne(t *testing.T, b []byte, m frame) error {
	t.Helper()
	l := &connLink{r: bufio.NewReader(bytes.NewReader(b)), maxFrame: 1 << 20}
	return l.readFrame(m)
}

// TestReadFrameRefusesInvalidUTF8 checks the conn transport refuses a frame
// with invalid UTF-8 in any of its strings, as protobuf's decoder does.
func TestReadFrameRefusesInvalidUTF8(t *testing.T) {
	const bad = "gs-\xff"
	anyOf := func(typeURL string) *anypb.Any { return &anypb.Any{TypeUrl: typeURL, Value: []byte{1}} }
	cases := map[string]frame{
		"ClientToServer.hello.name": &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: &tunnelv1.Hello{Name: bad}}},
		"ClientToServer.response.payload.type_url": &tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{
			Id: 1, Result: &tunnelv1.Response_Payload{Payload: anyOf(bad)}}}},
		"ServerToClient.request.metadata.key": &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{
			Id: 1, Payload: anyOf("t"), Metadata: map[string]string{bad: "v"}}}},
		"ServerToClient.request.metadata.value": &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{
			Id: 1, Payload: anyOf("t"), Metadata: map[string]string{"k": bad}}}},
		"ServerToClient.request.payload.type_url": &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{
			Id: 1, Payload: anyOf(bad)}}},
		"ServerToClient.welcome.connection_id": &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Welcome{Welcome: &tunnelv1.Welcome{ConnectionId: bad}}},
	}
	// A case for every string a frame holds, read from the descriptors: a
	// string field added to a frame needs a case here, which fails until
	// validFrameText checks it.
	paths := append(frameStrings("ClientToServer", (&tunnelv1.ClientToServer{}).ProtoReflect().Descriptor(), nil),
		frameStrings("ServerToClient", (&tunnelv1.ServerToClient{}).ProtoReflect().Descriptor(), nil)...)
	slices.Sort(paths)
	if names := slices.Sorted(maps.Keys(cases)); !slices.Equal(names, paths) {
		t.Fatalf("cases %q; the frames' strings are %q", names, paths)
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			b := frameBytes(t, m)
			into := m.ProtoReflect().New().Interface().(frame)
			if err := proto.Unmarshal(b[len(b)-proto.Size(m):], into); err == nil {
				t.Fatal("protobuf's decoder takes this frame; the case tests nothing")
			}
			err := readOne(t, b, into)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "UTF-8") {
				t.Fatalf("readFrame: %v, want INVALID_ARGUMENT naming invalid UTF-8", err)
			}
		})
	}
}

// TestReadFrameRefusesInvalidUTF8InStatus checks the google.rpc.Status of a
// frame, which vtprotobuf's decoder hands to protobuf's, is checked too.
// Neither encoder writes invalid UTF-8, so the frames are built by hand.
func TestReadFrameRefusesInvalidUTF8InStatus(t *testing.T) {
	st := protowire.AppendTag(nil, 1, protowire.VarintType)
	st = protowire.AppendVarint(st, 14)
	st = protowire.AppendTag(st, 2, protowire.BytesType)
	st = protowire.AppendString(st, "stopping \xff")
	field := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	response := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	response = field(response, 3, st) // Response.error
	for name, c := range map[string]struct {
		b    []byte
		into frame
	}{
		"ClientToServer.response.error.message": {field(nil, 2, response), new(tunnelv1.ClientToServer)},
		"ServerToClient.closed.message":         {field(nil, 6, st), new(tunnelv1.ServerToClient)},
	} {
		t.Run(name, func(t *testing.T) {
			err := readOne(t, append(binary.AppendUvarint(nil, uint64(len(c.b))), c.b...), c.into)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "UTF-8") {
				t.Fatalf("readFrame: %v, want INVALID_ARGUMENT naming invalid UTF-8", err)
			}
			// The same bytes with a valid message are taken.
			ok := bytes.Replace(c.b, []byte("\xff"), []byte("!"), 1)
			if err := readOne(t, append(binary.AppendUvarint(nil, uint64(len(ok))), ok...), c.into); err != nil {
				t.Fatalf("the frame with valid UTF-8: %v", err)
			}
		})
	}
}

// TestFramesRoundTrip checks a frame of each kind comes out of writeFrame
// and readFrame as it went in, the google.rpc.Status ones (protobuf's
// codec inside vtprotobuf's) included.
func TestFramesRoundTrip(t *testing.T) {
	payload, err := anypb.New(&tunnelv1.Ping{Nonce: 7})
	if err != nil {
		t.Fatal(err)
	}
	assignments := int64(3)
	toServer := []*tunnelv1.ClientToServer{
		{Frame: &tunnelv1.ClientToServer_Hello{Hello: &tunnelv1.Hello{Name: "gs-1", MaxInFlight: 4, MaxFrameBytes: 1 << 20, ProtocolVersion: 2}}},
		{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{Id: 9, Result: &tunnelv1.Response_Payload{Payload: payload}}}},
		{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{Id: 10, Result: &tunnelv1.Response_Error{Error: &statuspb.Status{Code: 5, Message: "no such function"}}}}},
		{Frame: &tunnelv1.ClientToServer_Ping{Ping: &tunnelv1.Ping{Nonce: 1, Heartbeat: true}}},
		{Frame: &tunnelv1.ClientToServer_Pong{Pong: &tunnelv1.Pong{Nonce: 2, AssignmentsVersion: &assignments}}},
	}
	toClient := []*tunnelv1.ServerToClient{
		{Frame: &tunnelv1.ServerToClient_Welcome{Welcome: &tunnelv1.Welcome{ConnectionId: "c-1", MaxFrameBytes: 1 << 20, ProtocolVersion: 2}}},
		{Frame: &tunnelv1.ServerToClient_Request{Request: &tunnelv1.Request{Id: 9, Payload: payload, TimeoutMs: 5000, Metadata: map[string]string{"traceparent": "00-1-2-01"}}}},
		{Frame: &tunnelv1.ServerToClient_Cancel{Cancel: &tunnelv1.Cancel{Id: 9}}},
		{Frame: &tunnelv1.ServerToClient_Pong{Pong: &tunnelv1.Pong{Nonce: 3}}},
		{Frame: &tunnelv1.ServerToClient_Closed{Closed: &statuspb.Status{Code: 14, Message: "server stopping"}}},
	}
	// What the conn transport writes is what protobuf's decoder reads, a
	// frame holding a nil message included (an encoder that sized it and
	// wrote it apart would break the stream).
	for _, f := range append(append([]frame{
		&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{}},
		&tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Request{}},
		&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Response{Response: &tunnelv1.Response{Id: 1, Result: &tunnelv1.Response_Error{}}}},
	}, framesOf(toServer)...), framesOf(toClient)...) {
		b, err := appendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		size, n := binary.Uvarint(b)
		if n <= 0 || int(size) != len(b)-n {
			t.Fatalf("%v: length %d, then %d bytes", f, size, len(b)-n)
		}
		got := f.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b[n:], got); err != nil || !proto.Equal(got, f) {
			t.Fatalf("%v: protobuf's decoder read %v (%v)", f, got, err)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := newConnLink(a, nil, 1<<20)
	r := newConnLink(b, nil, 1<<20)
	sent := make(chan error, 1)
	go func() {
		for _, f := range toServer {
			if err := w.writeFrame(f); err != nil {
				sent <- err
				return
			}
		}
		for _, f := range toClient {
			if err := w.writeFrame(f); err != nil {
				sent <- err
				return
			}
		}
		sent <- w.flush()
	}()
	for _, want := range toServer {
		got := new(tunnelv1.ClientToServer)
		if err := r.readFrame(got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("read %v, wrote %v", got, want)
		}
	}
	for _, want := range toClient {
		got := new(tunnelv1.ServerToClient)
		if err := r.readFrame(got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("read %v, wrote %v", got, want)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func framesOf[F frame](fs []F) []frame {
	out := make([]frame, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

// frameStrings returns the paths of the string fields of md and of the
// messages in it ("root.field.sub"; a map's as "….key" and "….value"),
// leaving out the google.rpc.Status, which protobuf's decoder checks.
// inside holds the messages on the path, so a message that holds itself
// fails the test instead of never ending.
func frameStrings(path string, md protoreflect.MessageDescriptor, inside []protoreflect.FullName) []string {
	if md.FullName() == "google.rpc.Status" {
		return nil
	}
	if slices.Contains(inside, md.FullName()) {
		panic(path + " holds a message it is in: leave it out as google.rpc.Status is")
	}
	inside = append(inside, md.FullName())
	var out []string
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapKey().Kind() == protoreflect.StringKind {
				out = append(out, p+".key")
			}
			if v := fd.MapValue(); v.Kind() == protoreflect.StringKind {
				out = append(out, p+".value")
			} else if v.Message() != nil {
				out = append(out, frameStrings(p+".value", v.Message(), inside)...)
			}
		case fd.Kind() == protoreflect.StringKind:
			out = append(out, p)
		case fd.Message() != nil:
			out = append(out, frameStrings(p, fd.Message(), inside)...)
		}
	}
	return out
}
