package gateway

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"
)

// client is one player WebSocket. Its uniqID, session and topics belong to
// the hub and are read or written only under mu (see hub for the lock
// order).
//
// Writes go straight to the connection's non-blocking socket as whole,
// pre-encoded WebSocket frames (one Write per frame, so frames from
// concurrent writers never interleave). What the kernel does not take is
// queued by nbio up to Config.SendBufferLimit bytes; past that nbio closes
// the connection, so a slow client is cut off and never delays others.
type client struct {
	ws *websocket.Conn

	mu      sync.Mutex
	uniqID  string
	session string
	topics  map[string]struct{}

	closeOnce sync.Once
}

// write sends one pre-encoded frame (see encodeWSFrame). The frame is shared
// between connections and must not be modified.
func (c *client) write(frame []byte) {
	_, _ = c.ws.Conn.Write(frame)
}

// closeWith sends a close frame with code and reason, then closes.
func (c *client) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		_ = c.ws.WriteClose(code, reason)
		_ = c.ws.Close()
	})
}

// forceOfflineDelay is how long netsvr lets data reach a client it forces
// offline before closing the connection.
const forceOfflineDelay = 3 * time.Second

// sendAndClose writes data (when not empty) and closes the connection: at
// once without data, after forceOfflineDelay with it.
func (c *client) sendAndClose(frame []byte) {
	if frame == nil {
		c.closeWith(closeNormal, "")
		return
	}
	c.write(frame)
	time.AfterFunc(forceOfflineDelay, func() { c.closeWith(closeNormal, "") })
}

// WebSocket opcodes of data frames.
const (
	opText   byte = 0x1
	opBinary byte = 0x2
)

// encodeWSFrame returns one unmasked, final server frame carrying payload.
// It is built once per message and written to every recipient.
func encodeWSFrame(opcode byte, payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xFFFF:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | opcode
	return append(b, payload...)
}

// WebSocket close codes (RFC 6455 §7.4.1).
const (
	closeNormal         = 1000
	closeInvalidPayload = 1007
	closeTryAgainLater  = 1013
)
