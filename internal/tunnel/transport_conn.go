package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// The conn transport carries the frames over a plain byte stream — a TCP
// connection (TLS on it is the caller's to add) or a Unix socket — with no
// HTTP/2 under them: the client opens with ConnPreface, then each frame is
// its length (uvarint) and its protobuf encoding, in both directions.
//
// It is the agent's transport for game servers on the same host: a frame
// costs one buffered write and one read, where a gRPC stream message also
// passes through HTTP/2 framing, flow control and a writer and a reader
// goroutine on each side. A writer flushes when its queue is empty (after
// one yield to the goroutines about to queue a frame, when other calls or
// handlers are outstanding), so frames sent together under load share a
// write(2). Flow control is TCP's:
// a peer that stops reading blocks the sender's writes, and keepalive (no
// frame for PingTimeout) ends the connection, which unblocks them.

// ConnPreface opens every connection of the conn transport. A listener
// shared with gRPC tells the two apart by it (ConnMux): an HTTP/2 client
// opens with "PRI * HTTP/2.0".
const ConnPreface = "CRTUNL1\n"

// ConnALPN is the TLS application protocol a client of the conn transport
// offers, on a port that also serves gRPC (h2).
const ConnALPN = "croupier-tunnel/1"

// connPrefaceTimeout bounds how long a new connection may take to send its
// preface and hello.
const connPrefaceTimeout = 10 * time.Second

// connLink is one connection of the conn transport, client or server side.
// Reads happen on one goroutine and writes (writeFrame, flush) on one other,
// as the links' contracts require.
type connLink struct {
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer // nil between flushes (connWriters)
	maxFrame int           // largest frame this side accepts
	rbuf     []byte        // frame being decoded, reused
	// wmu serialises the writer with the server's goodbye, which may come
	// while a writer is still in a Send the end of serve is unblocking.
	wmu   sync.Mutex
	wbuf  []byte // frame being encoded, reused
	close sync.Once
}

func newConnLink(nc net.Conn, r *bufio.Reader, maxFrame int) *connLink {
	if r == nil {
		r = bufio.NewReaderSize(nc, connReadBuffer)
	}
	return &connLink{nc: nc, r: r, maxFrame: maxFrame}
}

// connReadBuffer is a connection's read buffer. A server holds one per
// agent, idle most of the time, so it is small: frames of the size calls
// carry (a few hundred bytes) still come a dozen to a read, and a frame
// larger than the buffer is read straight into the frame's own buffer.
const connReadBuffer = 4 << 10

// connWriters holds write buffers between flushes: a link takes one for the
// frames it buffers and gives it back once they are sent, so an idle
// connection holds none (as gRPC pools its write buffers).
var connWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// writer returns the link's write buffer, taking one from connWriters if it
// has none. wmu is held.
func (l *connLink) writer() *bufio.Writer {
	if l.w == nil {
		l.w = connWriters.Get().(*bufio.Writer)
		l.w.Reset(l.nc)
	}
	return l.w
}

// readFrame reads the next frame into m. A length beyond the frame limit
// fails before anything is allocated for it.
func (l *connLink) readFrame(m frame) error {
	n, err := binary.ReadUvarint(l.r)
	switch {
	case err == nil:
	case errors.Is(err, io.ErrUnexpectedEOF):
		return status.Error(codes.Unavailable, "connection closed in the middle of a frame")
	case errors.Is(err, io.EOF) || errors.As(err, new(net.Error)) || errors.Is(err, net.ErrClosed):
		return status.Errorf(codes.Unavailable, "connection closed: %v", err)
	default: // a length of more than 64 bits
		return status.Errorf(codes.InvalidArgument, "malformed frame length: %v", err)
	}
	if n > uint64(l.maxFrame) {
		return status.Errorf(codes.ResourceExhausted, "frame of %d bytes exceeds the limit of %d", n, l.maxFrame)
	}
	if cap(l.rbuf) < int(n) {
		l.rbuf = make([]byte, n)
	}
	b := l.rbuf[:n]
	if _, err := io.ReadFull(l.r, b); err != nil {
		return status.Error(codes.Unavailable, "connection closed in the middle of a frame")
	}
	// UnmarshalVT copies what it keeps, so the buffer is reused; a frame
	// much larger than usual is not kept.
	proto.Reset(m)
	if err = m.UnmarshalVT(b); err == nil && !validFrameText(m) {
		err = errors.New("string field contains invalid UTF-8")
	}
	if cap(l.rbuf) > 64<<10 {
		l.rbuf = nil
	}
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed frame: %v", err)
	}
	return nil
}

// frame is a tunnel frame (ClientToServer or ServerToClient) with
// vtprotobuf's generated codec (buf.gen.vtproto.yaml), which costs a round
// trip ~20 % less CPU than protobuf's table-driven one
// (BenchmarkRoundTrip/tunnel-conn, docs/benchmarks.md).
type frame interface {
	proto.Message
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// validFrameText reports whether the strings of a frame decoded by
// UnmarshalVT are UTF-8, as protobuf's decoder requires of proto3 strings
// and vtprotobuf's does not check. The google.rpc.Status of an error or a
// close has no generated codec and goes through protobuf's decoder, which
// checks its message. TestReadFrameRefusesInvalidUTF8 fails when a string
// field is added to a frame and not here.
func validFrameText(m frame) bool {
	switch f := m.(type) {
	case *tunnelv1.ClientToServer:
		switch x := f.GetFrame().(type) {
		case *tunnelv1.ClientToServer_Hello:
			return utf8.ValidString(x.Hello.GetName())
		case *tunnelv1.ClientToServer_Response:
			return utf8.ValidString(x.Response.GetPayload().GetTypeUrl())
		}
	case *tunnelv1.ServerToClient:
		switch x := f.GetFrame().(type) {
		case *tunnelv1.ServerToClient_Welcome:
			return utf8.ValidString(x.Welcome.GetConnectionId())
		case *tunnelv1.ServerToClient_Request:
			if !utf8.ValidString(x.Request.GetPayload().GetTypeUrl()) {
				return false
			}
			for k, v := range x.Request.GetMetadata() {
				if !utf8.ValidString(k) || !utf8.ValidString(v) {
					return false
				}
			}
		}
	}
	return true
}

// writeFrame buffers m; flush sends what is buffered.
func (l *connLink) writeFrame(m frame) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	b, err := appendFrame(l.wbuf[:0], m)
	if err == nil {
		_, err = l.writer().Write(b)
	}
	if cap(b) > 64<<10 {
		b = nil
	}
	l.wbuf = b
	return err
}

// appendFrame appends m as the conn transport sends it: its length
// (uvarint), then its encoding.
func appendFrame(b []byte, m frame) ([]byte, error) {
	size := m.SizeVT()
	b = binary.AppendUvarint(b, uint64(size))
	n := len(b)
	b = slices.Grow(b, size)[:n+size]
	w, err := m.MarshalToSizedBufferVT(b[n:])
	if err == nil && w != size {
		err = fmt.Errorf("tunnel: frame encoded in %d bytes, sized %d", w, size)
	}
	return b, err
}

func (l *connLink) flush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.w == nil {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return err // the connection is broken: the buffer goes with it
	}
	l.w.Reset(nil)
	connWriters.Put(l.w)
	l.w = nil
	return nil
}

// goodbyeTimeout bounds the server's last frame: a client that does not
// read is not waited for.
const goodbyeTimeout = time.Second

// goodbye sends the client why the connection ends, at most within
// goodbyeTimeout (which also unblocks a writer stuck on a client that does
// not read), and closes the connection.
func (l *connLink) goodbye(why error) {
	defer l.Close()
	if why == nil {
		return
	}
	_ = l.nc.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
	f := &tunnelv1.ServerToClient{Frame: &tunnelv1.ServerToClient_Closed{Closed: status.Convert(why).Proto()}}
	if proto.Size(f) > minFrameBytes/2 { // within any client's frame limit
		f.Frame = &tunnelv1.ServerToClient_Closed{Closed: status.New(status.Code(why), "connection closed").Proto()}
	}
	if l.writeFrame(f) == nil {
		_ = l.flush()
	}
}

func (l *connLink) Close() { l.close.Do(func() { _ = l.nc.Close() }) }

// connServerLink is the server's side of a connection.
type connServerLink struct {
	*connLink
	full int // the frame limit once the hello is in
}

func (l *connServerLink) Recv() (*tunnelv1.ClientToServer, error) {
	f := new(tunnelv1.ClientToServer)
	if err := l.readFrame(f); err != nil {
		return nil, err
	}
	l.maxFrame = l.full // read by this goroutine only
	return f, nil
}

func (l *connServerLink) Send(f *tunnelv1.ServerToClient) error { return l.writeFrame(f) }

// connClientLink is the client's side of a connection.
type connClientLink struct{ *connLink }

func (l connClientLink) Recv() (*tunnelv1.ServerToClient, error) {
	f := new(tunnelv1.ServerToClient)
	if err := l.readFrame(f); err != nil {
		return nil, err
	}
	if st := f.GetClosed(); st != nil {
		// The server's goodbye: the connection ends with its status.
		if st.GetCode() == int32(codes.OK) {
			return nil, status.Error(codes.Unavailable, "the server closed the connection")
		}
		return nil, status.ErrorProto(st)
	}
	return f, nil
}

func (l connClientLink) Send(f *tunnelv1.ClientToServer) error { return l.writeFrame(f) }

// flusher is a link whose Send buffers: its writer calls flush once it has
// nothing more queued.
type flusher interface{ flush() error }

// ServeConn runs one connection of the conn transport on nc until it ends
// (the client goes away, ctx ends or the server closes), sends the client
// why in a last `closed` frame and closes nc. The connection must open with
// ConnPreface. It returns why the connection ended.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	r := bufio.NewReaderSize(nc, connReadBuffer)
	_ = nc.SetReadDeadline(time.Now().Add(connPrefaceTimeout))
	p, err := r.Peek(len(ConnPreface))
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("tunnel conn %s: reading the preface: %w", nc.RemoteAddr(), err)
	}
	if string(p) != ConnPreface {
		_ = nc.Close()
		return fmt.Errorf("tunnel conn %s: not the tunnel's preface (%q)", nc.RemoteAddr(), p)
	}
	_ = nc.SetReadDeadline(time.Time{}) // the handshake has its own bound (PingTimeout)
	return s.serveConn(ctx, nc, r, nil)
}

// ConnAdmit admits a connection of the conn transport once its preface is
// in, before its hello is read: it returns the context to serve the
// connection in and a function called with why the connection ended, or an
// error that refuses the connection (the client receives it in the
// goodbye). A server that authenticates its clients by their TLS
// certificates does it here (nc is the *tls.Conn, handshake done), as a
// gRPC server does in its interceptors.
type ConnAdmit func(ctx context.Context, nc net.Conn) (context.Context, func(error), error)

// serveConn serves nc once its preface is in r's buffer, and closes it.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, r *bufio.Reader, admit ConnAdmit) (err error) {
	_, _ = r.Discard(len(ConnPreface))
	// Until the hello is in, a frame is at most minFrameBytes: a peer that
	// has not said who it is gets no larger buffer.
	l := newConnLink(nc, r, min(minFrameBytes, s.lim.maxFrameBytes))
	if admit != nil {
		actx, done, aerr := admit(ctx, nc)
		if aerr != nil {
			l.goodbye(aerr)
			return aerr
		}
		ctx = actx
		defer func() { done(err) }()
	}
	// serve returns when the client goes away, ctx ends or the server
	// closes; goodbye then closes the connection, which ends serve's
	// reader and writer.
	err = s.serve(ctx, &connServerLink{connLink: l, full: s.lim.maxFrameBytes})
	l.goodbye(err)
	return err
}

// NewConnClient returns a Client that connects over the conn transport,
// opening each connection with dial (for a game server, a TCP connection to
// the agent's SDK address).
func NewConnClient(dial func(ctx context.Context) (net.Conn, error), opts ClientOptions) *Client {
	return newClient(opts, func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
		return dialConn(ctx, dial, hello)
	})
}

func dialConn(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), hello *tunnelv1.Hello) (clientLink, error) {
	nc, err := dial(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial: %v", err)
	}
	l := newConnLink(nc, nil, newLimits(int(hello.GetMaxFrameBytes())).maxFrameBytes) // 0: the default
	// The link lives until Close or until ctx ends.
	context.AfterFunc(ctx, l.Close)
	l.wmu.Lock()
	_, err = l.writer().WriteString(ConnPreface)
	l.wmu.Unlock()
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := l.writeFrame(&tunnelv1.ClientToServer{Frame: &tunnelv1.ClientToServer_Hello{Hello: hello}}); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.flush(); err != nil {
		l.Close()
		return nil, status.Errorf(codes.Unavailable, "send hello: %v", err)
	}
	return connClientLink{l}, nil
}

// ConnMux shares one listener between the conn transport and another
// protocol whose clients speak first (gRPC): it reads the first bytes of
// each connection, serves those that open with ConnPreface on a Server and
// hands every other connection, unchanged, to Other's Accept.
type ConnMux struct {
	// Admit, when set (before Serve), admits each connection of the conn
	// transport before it is served.
	Admit ConnAdmit

	lis    net.Listener
	srv    *Server
	others chan net.Conn
	// closed ends when the mux closes: connections still being read
	// stop waiting for their first bytes.
	closed context.Context
	close  context.CancelFunc
	wg     sync.WaitGroup
}

// NewConnMux returns a mux of lis for srv; Serve runs it.
func NewConnMux(lis net.Listener, srv *Server) *ConnMux {
	closed, cancel := context.WithCancel(context.Background())
	return &ConnMux{lis: lis, srv: srv, others: make(chan net.Conn), closed: closed, close: cancel}
}

// Other is the listener of the connections that are not the conn
// transport's. Closing it closes the mux.
func (m *ConnMux) Other() net.Listener { return muxOther{m} }

// Serve accepts connections until the mux (or Other, or the listener) is
// closed, and returns once every connection it served has ended. ctx is the
// served connections' context: its end ends them.
func (m *ConnMux) Serve(ctx context.Context) error {
	defer m.wg.Wait()
	var backoff time.Duration
	for {
		nc, err := m.lis.Accept()
		if err != nil {
			if m.closed.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors, an aborted connection: wait and go
				// on, as net/http and gRPC do.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-m.closed.Done():
				}
				continue
			}
			_ = m.Close()
			return err
		}
		backoff = 0
		m.wg.Go(func() { m.route(ctx, nc) })
	}
}

// route reads nc's first bytes and hands it on.
func (m *ConnMux) route(ctx context.Context, nc net.Conn) {
	r := bufio.NewReaderSize(nc, connReadBuffer)
	_ = nc.SetReadDeadline(time.Now().Add(connPrefaceTimeout))
	unblock := context.AfterFunc(m.closed, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	p, err := r.Peek(len(ConnPreface))
	if !unblock() || err != nil {
		_ = nc.Close() // the mux closed, or no first bytes in time
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	if bytes.Equal(p, []byte(ConnPreface)) {
		_ = m.srv.serveConn(ctx, nc, r, m.Admit)
		return
	}
	// gRPC gets the connection as it came: the bytes read so far, then
	// the socket itself (not through this reader).
	head, _ := r.Peek(r.Buffered())
	select {
	case m.others <- &replayConn{Conn: nc, head: bytes.Clone(head)}:
	case <-m.closed.Done():
		_ = nc.Close()
	}
}

// Close stops accepting; connections already served run on until the
// Server closes them.
func (m *ConnMux) Close() error {
	m.close()
	_ = m.lis.Close()
	return nil
}

// replayConn is a connection whose first bytes, already read, are head.
type replayConn struct {
	net.Conn
	head []byte
}

// NetConn returns the connection under c (a *tls.Conn on a TLS listener),
// as crypto/tls's Conn does.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

type muxOther struct{ m *ConnMux }

func (o muxOther) Accept() (net.Conn, error) {
	select {
	case nc := <-o.m.others:
		return nc, nil
	case <-o.m.closed.Done():
		return nil, net.ErrClosed
	}
}

func (o muxOther) Close() error   { return o.m.Close() }
func (o muxOther) Addr() net.Addr { return o.m.lis.Addr() }
