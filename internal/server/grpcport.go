package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	tunnelv1 "github.com/croupier/croupier/api/croupier/tunnel/v1"
	"github.com/croupier/croupier/internal/tunnel"
)

// The gRPC port (grpc_addr) also serves the tunnel's conn transport, which
// agents with `transport: auto` (the default) or `conn` use (docs/tunnel.md, "Conn transport"). The
// two are told apart by a connection's first bytes (tunnel.ConnMux), so TLS
// ends at the listener: the gRPC server gets connections whose handshake is
// done (handshakenTLS) and a tunnel connection is admitted by the edge as a
// TunnelService/Connect stream is (admitConn).

// keepaliveTimeout is how long the gRPC port waits for a keepalive ping's
// answer, and its connections' TCP_USER_TIMEOUT (unacknowledged data).
const keepaliveTimeout = 10 * time.Second

// listenGRPC opens the gRPC port: TLS (ALPN h2 for gRPC, tunnel.ConnALPN for
// the conn transport) unless tlsCfg is nil, shared by gRPC and the tunnel.
// What grpc-go's TLS credentials do on their own connections is done here:
// the cipher suites HTTP/2 forbids are off and TCP_USER_TIMEOUT is set (gRPC
// sets it only on a *net.TCPConn, which it no longer gets).
func (s *Server) listenGRPC(tlsCfg *tls.Config, e *edge) (*tunnel.ConnMux, error) {
	raw, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return nil, err
	}
	s.grpcLis = raw
	var lis net.Listener = userTimeoutListener{raw}
	if tlsCfg != nil {
		c := tlsCfg.Clone()
		c.NextProtos = []string{"h2", tunnel.ConnALPN}
		if c.CipherSuites == nil {
			c.CipherSuites = http2CipherSuites()
		}
		lis = tls.NewListener(lis, c)
	}
	mux := tunnel.NewConnMux(lis, s.tunnel)
	mux.Admit = s.admitConn(e)
	return mux, nil
}

// admitConn runs a conn-transport connection through the edge as the
// TunnelService/Connect stream it stands for: the same identity (the
// client certificate), the same rule (agents only) and the same refusals.
func (s *Server) admitConn(e *edge) tunnel.ConnAdmit {
	return func(ctx context.Context, nc net.Conn) (context.Context, func(error), error) {
		p := &peer.Peer{Addr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr()}
		if tc, ok := nc.(*tls.Conn); ok {
			p.AuthInfo = tlsInfo(tc.ConnectionState())
		}
		ctx, done, _, err := e.admit(peer.NewContext(ctx, p), tunnelv1.TunnelService_Connect_FullMethodName, nil)
		return ctx, done, err
	}
}

func tlsInfo(st tls.ConnectionState) credentials.TLSInfo {
	return credentials.TLSInfo{State: st, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
}

// handshakenTLS are the gRPC server's credentials on the shared port: the
// listener has done the TLS handshake, so they only check that the client
// negotiated HTTP/2 (as grpc-go's TLS credentials do) and hand gRPC the
// connection's TLS state, from which the edge reads the client certificate.
type handshakenTLS struct{}

func (handshakenTLS) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc := tlsConnOf(c)
	if tc == nil {
		return nil, nil, errors.New("credentials: the connection is not TLS")
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		return nil, nil, fmt.Errorf("credentials: the client negotiated ALPN %q; gRPC needs h2", st.NegotiatedProtocol)
	}
	return c, tlsInfo(st), nil
}

func (handshakenTLS) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("credentials: handshakenTLS is for servers")
}

func (handshakenTLS) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (h handshakenTLS) Clone() credentials.TransportCredentials { return h }

func (handshakenTLS) OverrideServerName(string) error { return nil }

// tlsConnOf finds the *tls.Conn under c (the mux hands gRPC its connections
// wrapped); nil if there is none.
func tlsConnOf(c net.Conn) *tls.Conn {
	for c != nil {
		if tc, ok := c.(*tls.Conn); ok {
			return tc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// http2CipherSuites are crypto/tls's secure TLS 1.2 suites less those
// HTTP/2 forbids (RFC 7540 appendix A), as grpc-go's credentials choose.
func http2CipherSuites() []uint16 {
	forbidden := map[uint16]bool{
		tls.TLS_RSA_WITH_AES_128_CBC_SHA: true, tls.TLS_RSA_WITH_AES_256_CBC_SHA: true,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256: true, tls.TLS_RSA_WITH_AES_256_GCM_SHA384: true,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: true, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: true,
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: true, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: true,
	}
	var out []uint16
	for _, cs := range tls.CipherSuites() {
		if !forbidden[cs.ID] {
			out = append(out, cs.ID)
		}
	}
	return out
}

// userTimeoutListener sets TCP_USER_TIMEOUT (keepaliveTimeout) on each
// connection it accepts: a peer that stops acknowledging data is dropped
// then, rather than when the kernel's retransmissions give up (minutes).
type userTimeoutListener struct{ net.Listener }

func (l userTimeoutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		setUserTimeout(tc, keepaliveTimeout) // best effort, as gRPC's own
	}
	return c, err
}
