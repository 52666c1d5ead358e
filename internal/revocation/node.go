package revocation

import (
	"context"
	"fmt"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/streamcut"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// The gateway's node listeners (cluster services, live relays) and its
// business listener admit callers by their certificate alone. They check
// the same list as the server: certs.NodePeers takes Revoked for the
// handshake, ServerOptions refuses every later call of a connection made
// before a revocation and cuts its open streams, and a gateway that does
// not serve CertificateService keeps its copy current with Follow.

// Follow loads the list and then reloads it from the store every Refresh
// until stop is called, which waits for the reloading goroutine; after each
// reload it calls each of reloaded (e.g. to cut connections whose
// certificate is now revoked). A failed first load is returned (nothing is
// started); a failed reload keeps the list as it was and logs a warning.
func (r *List) Follow(ctx context.Context, reloaded ...func()) (stop func(), err error) {
	return r.follow(ctx, Refresh, reloaded)
}

func (r *List) follow(ctx context.Context, every time.Duration, reloaded []func()) (stop func(), err error) {
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := r.Load(ctx); err != nil {
				if ctx.Err() == nil {
					r.log.Warn("reload revoked certificates", "err", err)
				}
				continue
			}
			for _, f := range reloaded {
				f()
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// ServerOptions are the interceptors of a gRPC server whose callers are
// authenticated by their client certificate alone: each call (and each
// stream as it opens) whose certificate is on the list is refused with
// UNAUTHENTICATED, CERTIFICATE_REVOKED — also on a connection made before
// the revocation, which the handshake check (certs.NodePeers) let in. A
// stream already open when its certificate is revoked is cut when the list
// learns of it (Load, or a revocation made through this list): its context
// is cancelled and it ends with the same code. A nil List refuses nothing.
func (r *List) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := r.checkPeer(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(r.streamInterceptor),
	}
}

// streamInterceptor refuses a stream whose certificate is revoked and
// holds the others until they end, so that a revocation cuts them.
func (r *List) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	serial := peerSerial(ss.Context())
	if r == nil || serial == "" {
		return h(srv, ss)
	}
	ctx, release := r.Hold(ss.Context(), serial)
	defer release()
	if err := streamcut.Cause(ctx); err != nil {
		return err
	}
	err := h(srv, cutStream{ServerStream: ss, ctx: ctx})
	if cut := streamcut.Cause(ctx); cut != nil {
		return cut // say why, whatever the handler made of its cancelled context (also nil)
	}
	return err
}

// Hold tracks a stream authenticated by the certificate with serial until
// release is called. The context it returns is cut (streamcut) once the
// list holds a revocation of serial (Load, or a revocation made through
// this list) — at once if it already does — with UNAUTHENTICATED,
// CERTIFICATE_REVOKED. A nil List or an empty serial holds nothing.
func (r *List) Hold(ctx context.Context, serial string) (_ context.Context, release func()) {
	if r == nil || serial == "" {
		return ctx, func() {}
	}
	ctx, release = r.streams.Hold(ctx, serial)
	// Checked once held: a revocation loaded in between is not missed.
	if r.Revoked(serial) {
		r.cutStreams()
	}
	return ctx, release
}

// cutStream is a server stream whose context a revocation can cancel.
type cutStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s cutStream) Context() context.Context { return s.ctx }

// cutStreams ends the held streams whose certificate is now revoked.
func (r *List) cutStreams() { r.streams.Cut(r.Revoked, revokedCert) }

// checkPeer refuses a call whose verified client certificate is revoked.
func (r *List) checkPeer(ctx context.Context) error {
	if serial := peerSerial(ctx); r.Revoked(serial) {
		return revokedCert(serial)
	}
	return nil
}

func revokedCert(serial string) error {
	return apierr.New(codes.Unauthenticated, apierr.CodeCertificateRevoked,
		fmt.Sprintf("the certificate of this caller (serial %s) is revoked", serial), "serial", serial)
}

// peerSerial is the serial of the caller's verified client certificate, ""
// if it has none (the listener's TLS config decides who gets this far).
func peerSerial(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return certs.Serial(info.State.VerifiedChains[0][0])
}
