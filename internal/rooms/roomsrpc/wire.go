package roomsrpc

import (
	"context"
	"fmt"
	"net/http"

	"github.com/croupier/croupier/internal/rooms"
	"google.golang.org/protobuf/proto"
)

// wireCodec is connect's binary protobuf codec, except that it sends a
// *rooms.Outgoing as the bytes the event was encoded to once for every
// member, instead of encoding it again per stream.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (c wireCodec) Marshal(m any) ([]byte, error) { return c.MarshalAppend(nil, m) }

// MarshalAppend copies an Outgoing's shared bytes into dst: connect
// returns the buffer it marshals into to a pool, so the shared slice must
// never be handed over.
func (wireCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	switch m := m.(type) {
	case *rooms.Outgoing:
		b, err := m.Wire()
		if err != nil {
			return nil, err
		}
		return append(dst, b...), nil
	case proto.Message:
		return proto.MarshalOptions{}.MarshalAppend(dst, m)
	}
	return nil, fmt.Errorf("%T is not a protobuf message", m)
}

func (wireCodec) MarshalStable(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a protobuf message", m)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(pm)
}

func (wireCodec) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a protobuf message", m)
	}
	return proto.Unmarshal(b, pm)
}

func (wireCodec) IsBinary() bool { return true }

// batchWriter lets a stream's writer send the events queued for it with
// one flush: connect flushes after every message it sends, and on HTTP/2
// each flush is a DATA frame and, usually, a write syscall of its own.
// Only the stream's handler goroutine (its single writer) uses it.
type batchWriter struct {
	http.ResponseWriter
	holding bool
}

func (w *batchWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.holding {
		f.Flush()
	}
}

func (w *batchWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type batchKey struct{}

// withBatching hands the MessageStream handler a batchWriter (through the
// request's context) over the response writer.
func withBatching(path string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok || r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		bw := &batchWriter{ResponseWriter: w}
		next.ServeHTTP(bw, r.WithContext(context.WithValue(r.Context(), batchKey{}, bw)))
	})
}
