// Package tunnel is reverse RPC: clients that can only dial out connect to a
// server, and the server calls functions on them over that connection.
//
// The shape follows the original reverse-rpc package:
//
//	server  [transport] <-> [Server: Clients/Call/CallAll] <- callers
//	client  [transport] <-> [Client: dispatcher] -> HandlerRegistry handlers
//
// Transports only move ClientToServer / ServerToClient frames
// (proto croupier.tunnel.v1). Three exist: the conn transport (frames
// straight on a TCP or TLS connection; NewAutoClient falls back from it to
// the stream), a bidirectional gRPC stream (TunnelService.Connect) and a
// long-poll transport over plain HTTP/1.1 for networks whose proxies break
// HTTP/2 streams. Everything else — handshake,
// flow control, deadlines, cancellation, keepalive, replacement of stale
// connections — lives in the transport-independent core, so the transports
// behave the same and one conformance suite tests them all.
//
// The design, wire protocol and measured numbers are in docs/tunnel.md.
package tunnel
