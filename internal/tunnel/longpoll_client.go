package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
)

// NewLongPollClient returns a Client that connects over the long-poll
// transport served at baseURL (where the server mounted LongPollHandler,
// e.g. "https://croupier:8080/tunnel"). hc carries TLS settings and proxies;
// nil means a default client. Requests are bounded by their own timeouts, so
// hc.Timeout may stay zero; if set, it must exceed the poll wait (20s).
func NewLongPollClient(baseURL string, hc *http.Client, opts ClientOptions) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	o := opts.withDefaults()
	cfg := lpClientConfig{
		base:        strings.TrimRight(baseURL, "/"),
		hc:          hc,
		lim:         newLimits(o.MaxFrameBytes),
		pollWait:    defaultPollWait,
		retryWindow: o.PingTimeout,
		reqTimeout:  o.PingTimeout,
	}
	return newClient(opts, func(ctx context.Context, hello *tunnelv1.Hello) (clientLink, error) {
		return dialLongPoll(ctx, cfg, hello)
	})
}

type lpClientConfig struct {
	base     string
	hc       *http.Client
	lim      limits
	pollWait time.Duration
	// retryWindow is how long a send or poll keeps retrying transient
	// failures before the link is declared dead.
	retryWindow time.Duration
	// reqTimeout bounds open, send and close requests; polls get pollWait
	// on top.
	reqTimeout time.Duration
}

// lpClientLink is the client end of a long-poll session: a poll loop feeds
// Recv, a send loop drains Send in batches.
type lpClientLink struct {
	cfg     lpClientConfig
	sendLim limits
	session string
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelCauseFunc

	in  chan *tunnelv1.ServerToClient
	out chan *tunnelv1.ClientToServer

	closeOnce sync.Once
	wg        sync.WaitGroup
}

const lpClientQueue = 256

func dialLongPoll(ctx context.Context, cfg lpClientConfig, hello *tunnelv1.Hello) (clientLink, error) {
	resp := &tunnelv1.LongPollOpenResponse{}
	err := cfg.post(ctx, "open", &tunnelv1.LongPollOpenRequest{Hello: hello}, cfg.reqTimeout, func(b []byte) error {
		return unmarshalSmall(b, resp)
	})
	if err != nil {
		return nil, err
	}
	if err := validateSessionID(resp.GetSessionId()); err != nil {
		return nil, err
	}
	// Send batches must fit the server's limit as well as ours; the poll
	// decoder keeps our own.
	sendLim := cfg.lim
	if m := int(resp.GetMaxFrameBytes()); m > 0 && m < sendLim.maxFrameBytes {
		sendLim = newLimits(m)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l := &lpClientLink{
		cfg:     cfg,
		sendLim: sendLim,
		session: resp.GetSessionId(),
		parent:  ctx,
		ctx:     lctx,
		cancel:  cancel,
		in:      make(chan *tunnelv1.ServerToClient, lpClientQueue),
		out:     make(chan *tunnelv1.ClientToServer, lpClientQueue),
	}
	l.wg.Go(l.pollLoop)
	l.wg.Go(l.sendLoop)
	return l, nil
}

func (l *lpClientLink) Recv() (*tunnelv1.ServerToClient, error) {
	select {
	case f := <-l.in:
		return f, nil
	case <-l.ctx.Done():
		return nil, context.Cause(l.ctx)
	}
}

func (l *lpClientLink) Send(f *tunnelv1.ClientToServer) error {
	select {
	case l.out <- f:
		return nil
	case <-l.ctx.Done():
		return context.Cause(l.ctx)
	}
}

// Close stops both loops and tells the server, best effort, so it drops the
// session at once instead of at its keepalive timeout.
func (l *lpClientLink) Close() {
	l.closeOnce.Do(func() {
		l.cancel(status.Error(codes.Canceled, "long-poll link closed"))
		l.wg.Wait()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.parent), time.Second)
		defer cancel()
		_ = l.cfg.post(ctx, "close", &tunnelv1.LongPollCloseRequest{SessionId: l.session}, time.Second, nil)
	})
}

func (l *lpClientLink) pollLoop() {
	var ack uint64
	for {
		var resp *tunnelv1.LongPollPollResponse
		err := l.retry(func() error {
			req := &tunnelv1.LongPollPollRequest{SessionId: l.session, Ack: ack, WaitMs: l.cfg.pollWait.Milliseconds()}
			return l.cfg.post(l.ctx, "poll", req, l.cfg.pollWait+l.cfg.reqTimeout, func(b []byte) (err error) {
				resp, err = decodePollResponse(b, l.cfg.lim)
				return err
			})
		})
		if err != nil {
			l.cancel(err)
			return
		}
		seq := resp.GetSeq()
		if seq == 0 || seq <= ack {
			continue // nothing new, or a redelivery of a batch already taken
		}
		if seq != ack+1 {
			l.cancel(status.Errorf(codes.Internal, "long-poll protocol violation: batch %d after %d", seq, ack))
			return
		}
		for _, f := range resp.GetFrames() {
			select {
			case l.in <- f:
			case <-l.ctx.Done():
				return
			}
		}
		ack = seq
	}
}

func (l *lpClientLink) sendLoop() {
	var seq uint64
	var carry *tunnelv1.ClientToServer
	budget := l.sendLim.maxBatchBytes() - batchOverheadBytes
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-l.out:
			case <-l.ctx.Done():
				return
			}
		}
		// Batch whatever else is already queued, within the limits.
		frames := []*tunnelv1.ClientToServer{first}
		size := proto.Size(first)
	fill:
		for len(frames) < l.sendLim.maxBatchFrames {
			select {
			case f := <-l.out:
				fs := proto.Size(f)
				if size+fs > budget {
					carry = f
					break fill
				}
				frames = append(frames, f)
				size += fs
			default:
				break fill
			}
		}
		seq++
		req := &tunnelv1.LongPollSendRequest{SessionId: l.session, Seq: seq, Frames: frames}
		err := l.retry(func() error {
			return l.cfg.post(l.ctx, "send", req, l.cfg.reqTimeout, nil)
		})
		if err != nil {
			l.cancel(err)
			return
		}
	}
}

// retry runs fn until it succeeds, fails permanently, or transient failures
// have lasted longer than the retry window.
func (l *lpClientLink) retry(fn func() error) error {
	var since time.Time
	delay := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var tr *transientError
		if !errors.As(err, &tr) || l.ctx.Err() != nil {
			return err
		}
		if since.IsZero() {
			since = time.Now()
		} else if time.Since(since) > l.cfg.retryWindow {
			return status.Errorf(codes.Unavailable, "long-poll server unreachable for %s: %v", l.cfg.retryWindow, tr.err)
		}
		select {
		case <-l.ctx.Done():
			return context.Cause(l.ctx)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// transientError marks failures worth retrying on the same session: network
// errors and error responses that did not come from the tunnel server.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// post sends one request and decodes the response with decode (nil: ignore
// the body). Errors are statuses; those worth retrying are transientError.
func (c lpClientConfig) post(ctx context.Context, op string, req proto.Message, timeout time.Duration, decode func([]byte) error) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return status.Errorf(codes.Internal, "encoding %s request: %v", op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/"+op, bytes.NewReader(body))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "tunnel long-poll URL %q: %v", c.base, err)
	}
	hr.Header.Set("Content-Type", contentTypeProto)
	resp, err := c.hc.Do(hr)
	if err != nil {
		return &transientError{status.Errorf(codes.Unavailable, "long-poll %s: %v", op, err)}
	}
	defer resp.Body.Close()
	limit := smallMessageBytes
	if op == "poll" {
		limit = c.lim.maxBatchBytes()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return &transientError{status.Errorf(codes.Unavailable, "long-poll %s: reading response: %v", op, err)}
	}
	if len(data) > limit {
		return status.Errorf(codes.ResourceExhausted, "long-poll %s response exceeds %d bytes", op, limit)
	}
	if resp.StatusCode != http.StatusOK {
		return responseError(op, resp, data)
	}
	if decode == nil {
		return nil
	}
	return decode(data)
}

// responseError turns an error response into a status. The tunnel server's
// own errors carry statusHeader and a google.rpc.Status body and are final;
// anything else came from a proxy and is retried if it looks temporary.
func responseError(op string, resp *http.Response, body []byte) error {
	if resp.Header.Get(statusHeader) != "" {
		st := &spb.Status{}
		if err := proto.Unmarshal(body, st); err == nil && st.GetCode() != int32(codes.OK) {
			return status.ErrorProto(st)
		}
	}
	code := codeFromHTTPStatus(resp.StatusCode)
	err := status.Errorf(code, "long-poll %s: HTTP %s from %s", op, resp.Status, resp.Request.URL.Host)
	if code == codes.Unavailable || resp.StatusCode >= 500 && resp.Header.Get(statusHeader) == "" {
		return &transientError{err}
	}
	return err
}
