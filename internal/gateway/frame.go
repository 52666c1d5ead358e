package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Business frames (netsvr protocol v2.0.2): a uint32 big-endian length that
// counts what follows, then a uint32 big-endian cmd and a protobuf body. A
// heartbeat is a frame whose whole payload is one of the two magic strings
// below, with no cmd.
var (
	// PingMessage is the heartbeat a business (or a client) sends.
	PingMessage = []byte("~3yPvmnz~")
	// PongMessage is the gateway's answer to PingMessage.
	PongMessage = []byte("~u38NvZ~")
)

// ErrFrameTooLarge is returned for a frame whose length exceeds the limit.
var ErrFrameTooLarge = errors.New("business frame exceeds the receive pack limit")

// frame is one decoded business frame. A heartbeat has heartbeat set and no
// cmd or body.
type frame struct {
	heartbeat bool
	cmd       uint32
	body      []byte
}

// readFrame reads one frame from r. limit bounds the length prefix (cmd +
// body); the body is freshly allocated and owned by the caller.
func readFrame(r io.Reader, limit int) (frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(limit) {
		return frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return parseFrame(buf)
}

// parseFrame splits a frame payload (what follows the length) into cmd and body.
func parseFrame(buf []byte) (frame, error) {
	if bytes.Equal(buf, PingMessage) || bytes.Equal(buf, PongMessage) {
		return frame{heartbeat: true}, nil
	}
	if len(buf) < 4 {
		return frame{}, fmt.Errorf("business frame of %d bytes is shorter than its 4-byte cmd", len(buf))
	}
	return frame{cmd: binary.BigEndian.Uint32(buf[:4]), body: buf[4:]}, nil
}

// appendFrame appends a framed cmd + body to dst.
func appendFrame(dst []byte, cmd uint32, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(body)))
	dst = binary.BigEndian.AppendUint32(dst, cmd)
	return append(dst, body...)
}

// appendHeartbeat appends a framed heartbeat payload (PingMessage or
// PongMessage) to dst.
func appendHeartbeat(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}
