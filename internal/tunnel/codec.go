package tunnel

import (
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// Field numbers of the repeated frame fields in the long-poll batches; the
// pre-scan below checks them on the wire before anything is allocated.
const (
	sendRequestFramesField  protowire.Number = 3
	pollResponseFramesField protowire.Number = 2
	smallMessageBytes                        = 64 << 10
)

// decodeOpenRequest decodes and validates the body of POST <prefix>/open.
func decodeOpenRequest(b []byte) (*tunnelv1.LongPollOpenRequest, error) {
	m := &tunnelv1.LongPollOpenRequest{}
	if err := unmarshalSmall(b, m); err != nil {
		return nil, err
	}
	if m.GetHello() == nil {
		return nil, status.Error(codes.InvalidArgument, "open request has no hello")
	}
	if err := validateHello(m.GetHello()); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeSendRequest decodes and validates the body of POST <prefix>/send.
func decodeSendRequest(b []byte, lim limits) (*tunnelv1.LongPollSendRequest, error) {
	if err := checkBatch(b, sendRequestFramesField, lim); err != nil {
		return nil, err
	}
	m := &tunnelv1.LongPollSendRequest{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "malformed send batch: %v", err)
	}
	if err := validateSessionID(m.GetSessionId()); err != nil {
		return nil, err
	}
	if m.GetSeq() == 0 {
		return nil, status.Error(codes.InvalidArgument, "send batch seq must start at 1")
	}
	for _, f := range m.GetFrames() {
		if err := validateClientFrame(f); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodePollRequest decodes and validates the body of POST <prefix>/poll.
func decodePollRequest(b []byte) (*tunnelv1.LongPollPollRequest, error) {
	m := &tunnelv1.LongPollPollRequest{}
	if err := unmarshalSmall(b, m); err != nil {
		return nil, err
	}
	if err := validateSessionID(m.GetSessionId()); err != nil {
		return nil, err
	}
	if m.GetWaitMs() < 0 {
		return nil, status.Error(codes.InvalidArgument, "poll wait_ms must not be negative")
	}
	return m, nil
}

// decodeCloseRequest decodes and validates the body of POST <prefix>/close.
func decodeCloseRequest(b []byte) (*tunnelv1.LongPollCloseRequest, error) {
	m := &tunnelv1.LongPollCloseRequest{}
	if err := unmarshalSmall(b, m); err != nil {
		return nil, err
	}
	if err := validateSessionID(m.GetSessionId()); err != nil {
		return nil, err
	}
	return m, nil
}

// decodePollResponse decodes and validates a poll response on the client.
func decodePollResponse(b []byte, lim limits) (*tunnelv1.LongPollPollResponse, error) {
	if err := checkBatch(b, pollResponseFramesField, lim); err != nil {
		return nil, err
	}
	m := &tunnelv1.LongPollPollResponse{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.Internal, "malformed poll response: %v", err)
	}
	if m.GetSeq() == 0 && len(m.GetFrames()) > 0 {
		return nil, status.Error(codes.Internal, "poll response has frames but no seq")
	}
	for _, f := range m.GetFrames() {
		if err := validateServerFrame(f); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func unmarshalSmall(b []byte, m proto.Message) error {
	if len(b) > smallMessageBytes {
		return status.Errorf(codes.ResourceExhausted, "message of %d bytes exceeds the limit of %d", len(b), smallMessageBytes)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed %s: %v", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// checkBatch enforces the batch limits on the raw encoding, so an oversized
// or over-full batch is refused before it is unmarshalled.
func checkBatch(b []byte, framesField protowire.Number, lim limits) error {
	if len(b) > lim.maxBatchBytes() {
		return status.Errorf(codes.ResourceExhausted, "batch of %d bytes exceeds the limit of %d", len(b), lim.maxBatchBytes())
	}
	count := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return status.Errorf(codes.InvalidArgument, "malformed batch: %v", protowire.ParseError(n))
		}
		b = b[n:]
		if num == framesField && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return status.Errorf(codes.InvalidArgument, "malformed batch frame: %v", protowire.ParseError(n))
			}
			count++
			if count > lim.maxBatchFrames {
				return status.Errorf(codes.ResourceExhausted, "batch has more than %d frames", lim.maxBatchFrames)
			}
			if len(v) > lim.maxFrameBytes {
				return status.Errorf(codes.ResourceExhausted, "frame of %d bytes exceeds the limit of %d", len(v), lim.maxFrameBytes)
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return status.Errorf(codes.InvalidArgument, "malformed batch: %v", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// validateClientFrame checks a frame from a client. Frames of a kind this
// build does not know (Frame == nil) pass: they are ignored, so newer peers
// can add frame kinds.
func validateClientFrame(f *tunnelv1.ClientToServer) error {
	if f == nil {
		return status.Error(codes.InvalidArgument, "nil frame")
	}
	switch fr := f.GetFrame().(type) {
	case *tunnelv1.ClientToServer_Hello:
		return validateHello(fr.Hello)
	case *tunnelv1.ClientToServer_Response:
		return validateResponse(fr.Response)
	}
	return nil
}

// validateServerFrame checks a frame from the server.
func validateServerFrame(f *tunnelv1.ServerToClient) error {
	if f == nil {
		return status.Error(codes.Internal, "nil frame")
	}
	switch fr := f.GetFrame().(type) {
	case *tunnelv1.ServerToClient_Request:
		r := fr.Request
		if r.GetId() == 0 {
			return status.Error(codes.Internal, "request with id 0")
		}
		if r.GetTimeoutMs() < 0 {
			return status.Error(codes.Internal, "request with negative timeout")
		}
		if err := validateMetadata(r.GetMetadata()); err != nil {
			return err
		}
		return validateAny(r.GetPayload())
	case *tunnelv1.ServerToClient_Cancel:
		if fr.Cancel.GetId() == 0 {
			return status.Error(codes.Internal, "cancel with id 0")
		}
	}
	return nil
}

func validateResponse(r *tunnelv1.Response) error {
	if r.GetId() == 0 {
		return status.Error(codes.InvalidArgument, "response with id 0")
	}
	switch res := r.GetResult().(type) {
	case *tunnelv1.Response_Payload:
		return validateAny(res.Payload)
	case *tunnelv1.Response_Error:
		if res.Error == nil || res.Error.GetCode() == int32(codes.OK) {
			return status.Error(codes.InvalidArgument, "response error with status OK")
		}
		return nil
	default:
		return status.Error(codes.InvalidArgument, "response has neither payload nor error")
	}
}

func validateAny(a *anypb.Any) error {
	if a == nil {
		return status.Error(codes.InvalidArgument, "missing payload")
	}
	url := a.GetTypeUrl()
	if len(url) > maxTypeURLBytes {
		return status.Errorf(codes.InvalidArgument, "payload type URL longer than %d bytes", maxTypeURLBytes)
	}
	if name := url[strings.LastIndexByte(url, '/')+1:]; name == "" {
		return status.Errorf(codes.InvalidArgument, "payload type URL %q names no message", url)
	}
	return nil
}

func validateHello(h *tunnelv1.Hello) error {
	if err := validateName(h.GetName()); err != nil {
		return err
	}
	if m := h.GetMaxFrameBytes(); m != 0 && m < minFrameBytes {
		return status.Errorf(codes.InvalidArgument, "max_frame_bytes %d is below the minimum of %d", m, minFrameBytes)
	}
	if h.GetMaxInFlight() > maxInFlightLimit {
		return status.Errorf(codes.InvalidArgument, "max_in_flight %d exceeds the limit of %d", h.GetMaxInFlight(), maxInFlightLimit)
	}
	return nil
}

// validateName accepts what is safe as a map key and in logs: 1..256 bytes of
// printable characters.
func validateName(name string) error {
	if name == "" {
		return status.Error(codes.InvalidArgument, "client name is empty")
	}
	if len(name) > maxNameBytes {
		return status.Errorf(codes.InvalidArgument, "client name longer than %d bytes", maxNameBytes)
	}
	for _, r := range name {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return status.Errorf(codes.InvalidArgument, "client name %q has a non-printable character", name)
		}
	}
	return nil
}

func validateSessionID(id string) error {
	if id == "" || len(id) > maxSessionIDChars {
		return status.Error(codes.InvalidArgument, "missing or malformed session_id")
	}
	return nil
}
