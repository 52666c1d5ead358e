package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/rooms"
)

// handshakeTimeout bounds the RTMP handshake and connect/publish commands.
const handshakeTimeout = 10 * time.Second

func (n *Node) acceptRTMP(ln net.Listener) {
	defer n.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		n.mu.Lock()
		if n.closed {
			n.mu.Unlock()
			_ = c.Close()
			return
		}
		n.conns[c] = struct{}{}
		n.mu.Unlock()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() {
				n.mu.Lock()
				delete(n.conns, c)
				n.mu.Unlock()
				_ = c.Close()
			}()
			if err := n.serveRTMP(c); err != nil {
				n.log.Debug("RTMP connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// splitPublishPath takes "/<room>/<key>" (or "/live/<room>/<key>").
func splitPublishPath(p string) (roomID, key string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", false
	}
	roomID, key = parts[len(parts)-2], parts[len(parts)-1]
	return roomID, key, roomID != "" && key != "" && len(roomID) <= 64 && len(key) <= rooms.MaxStreamKeyLen
}

// serveRTMP runs one RTMP connection: handshake, key check, lease, then
// the publish loop until the publisher leaves, the key changes, the lease
// is lost or the node closes.
func (n *Node) serveRTMP(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil {
		return err
	}
	// Answers connect and reads up to the publish (or play) command.
	if err := sc.AcceptConn(); err != nil {
		return err
	}
	remote := c.RemoteAddr().String()
	if !sc.Publish {
		return n.servePlay(c, sc)
	}
	roomID, key, ok := splitPublishPath(sc.URL.Path)
	if !ok {
		n.m.refused.WithLabelValues("bad_path").Inc()
		n.audit(AuditEvent{Action: ActionPublishRefused, Remote: remote, Reason: "path is not /<room_id>/<stream_key>"})
		_ = sc.RejectAction()
		return errors.New("bad publish path")
	}
	ctx, cancel := context.WithTimeout(n.ctx, handshakeTimeout)
	name, holder, err := n.cfg.Rooms.PublishKey(ctx, roomID, key)
	cancel()
	if err != nil {
		label, reason := "bad_key", reasonBadKey
		if errors.Is(err, rooms.ErrKeyHolderRevoked) {
			label, reason = "holder_revoked", reasonHolderRevoked
		}
		n.m.refused.WithLabelValues(label).Inc()
		n.audit(AuditEvent{Action: ActionPublishRefused, RoomID: roomID, Remote: remote, Reason: reason})
		_ = sc.RejectAction()
		return err
	}
	path := roomID + "/" + name
	stopped := make(chan struct{})
	s, err := n.startPublish(path, roomID, name, holder, remote, sync.OnceFunc(func() { close(stopped); _ = c.Close() }))
	if err != nil {
		n.m.refused.WithLabelValues(refusalReason(err)).Inc()
		n.audit(AuditEvent{Action: ActionPublishRefused, RoomID: roomID, Stream: name, Remote: remote, Reason: err.Error()})
		_ = sc.RejectAction()
		return err
	}
	defer n.endPublish(s)
	// A ban, LIVE taken away or a rotation that ran between the key check
	// and the registration found no stream here to cut off: check again
	// now that any later change finds it.
	if label, reason, ok := n.keyStillValid(s, key, handshakeTimeout); !ok {
		if reason == "" {
			label, reason = "error", "the stream key could not be checked again"
		}
		n.m.refused.WithLabelValues(label).Inc()
		n.audit(AuditEvent{Action: ActionPublishRefused, RoomID: roomID, Stream: name, Remote: remote, Reason: reason})
		_ = sc.RejectAction()
		return errors.New(reason)
	}
	if err := sc.AcceptAction(); err != nil {
		return err
	}
	_ = c.SetWriteDeadline(time.Time{})
	n.liveEvent(s, clientv1.LiveEvent_STARTED)
	n.log.Info("live stream started", "stream", path, "epoch", s.epoch, "remote", remote)

	n.wg.Add(2)
	go n.renewLease(s, stopped)
	go n.checkKey(s, key, stopped)
	for {
		_ = c.SetReadDeadline(time.Now().Add(n.cfg.IdleTimeout))
		msg, err := sc.Read()
		if err != nil {
			return err
		}
		t, ok, err := tagFromMessage(msg)
		if err != nil {
			return err
		}
		if ok {
			s.write(t)
		}
	}
}

// errNodeFull: the node already publishes MaxStreams streams.
var errNodeFull = errors.New("this node publishes its maximum number of streams")

// errPublishing: the stream already has a publisher on this node.
var errPublishing = errors.New("the stream already has a publisher")

func refusalReason(err error) string {
	switch {
	case errors.Is(err, errNodeFull):
		return "node_full"
	case errors.Is(err, errPublishing), errors.Is(err, ErrLeaseHeld):
		return "already_published"
	}
	return "error"
}

// startPublish takes the stream's lease and registers it on the node,
// published by the user holder.
func (n *Node) startPublish(path, roomID, name, holder, remote string, stop func()) (*stream, error) {
	n.mu.Lock()
	switch old := n.streams[path]; {
	case n.closed:
		n.mu.Unlock()
		return nil, errors.New("node closing")
	case old != nil && !old.relayed:
		n.mu.Unlock()
		return nil, errPublishing
	case n.local >= n.cfg.MaxStreams:
		n.mu.Unlock()
		return nil, errNodeFull
	}
	n.local++ // reserved while the lease is taken
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(n.ctx, handshakeTimeout)
	epoch, err := n.cfg.Leases.Acquire(ctx, path, Holder{NodeID: n.cfg.NodeID, RelayAddr: n.cfg.RelayAddr})
	cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.local--
		return nil, err
	}
	s := newStream(path, roomID, name, n.cfg.NodeID, epoch, false, n.cfg.ViewerQueue, n.cfg.GOPCacheBytes, n.m)
	s.stop, s.publisher, s.remote = stop, holder, remote
	if old := n.streams[path]; old != nil {
		// A relay of an older epoch: its viewers move to this publisher
		// when they reconnect.
		old.stop()
		n.m.streams.Dec()
	}
	n.streams[path] = s
	n.m.streams.Inc()
	return s, nil
}

// endPublish ends a published stream: viewers and relays are ended, the
// lease released and STOPPED sent.
func (n *Node) endPublish(s *stream) {
	s.stop()
	if !s.end() {
		return
	}
	n.remove(s)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	_ = n.cfg.Leases.Release(ctx, s.path, s.epoch)
	cancel()
	n.liveEvent(s, clientv1.LiveEvent_STOPPED)
	n.log.Info("live stream stopped", "stream", s.path, "epoch", s.epoch)
}

// renewLease keeps the stream's lease alive; losing it stops the stream.
func (n *Node) renewLease(s *stream, stopped <-chan struct{}) {
	defer n.wg.Done()
	ttl := n.cfg.Leases.TTL()
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-stopped:
			return
		case <-n.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(n.ctx, ttl/3)
			err := n.cfg.Leases.Renew(ctx, s.path, s.epoch)
			cancel()
			switch {
			case errors.Is(err, ErrLeaseLost):
				n.log.Warn("live: publisher lease lost; stopping the stream", "stream", s.path, "epoch", s.epoch)
				s.stop()
				return
			case err == nil:
				renewed = time.Now()
			case time.Since(renewed) >= ttl:
				// Cut off from the leases for a TTL: another node may
				// hold the stream by now, so this epoch steps down.
				n.log.Warn("live: cannot renew the publisher lease; stopping the stream", "stream", s.path, "epoch", s.epoch, "err", err)
				s.stop()
				return
			default:
				n.log.Warn("live: renewing the publisher lease failed; retrying", "stream", s.path, "epoch", s.epoch, "err", err)
			}
		}
	}
}

// checkKey checks the stream key again every KeyCheckInterval, apart from
// the lease's renewal (a slow database never delays it): a key rotated or
// revoked, or a holder banned or without LIVE, cuts the publisher off,
// whichever node the change was made on. A check that cannot be made is
// logged once until one succeeds again, and keeps the stream.
func (n *Node) checkKey(s *stream, key string, stopped <-chan struct{}) {
	defer n.wg.Done()
	every := n.cfg.KeyCheckInterval
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-stopped:
			return
		case <-n.ctx.Done():
			return
		case <-t.C:
			_, reason, ok := n.keyStillValid(s, key, every)
			switch {
			case !ok && reason == "":
				if !failing {
					n.log.Warn("live: the stream key could not be checked again; the stream goes on until a check says otherwise", "stream", s.path)
				}
				failing = true
			case !ok:
				n.cutOff(s, reason)
				return
			default:
				if failing {
					n.log.Info("live: the stream key is checked again", "stream", s.path)
				}
				failing = false
			}
		}
	}
}

// keyStillValid checks the key a publisher of s presented again, within
// timeout. It is not (ok false, with the refusal's metric label and
// reason, as at the door) when the key was rotated or revoked, or its
// holder may no longer publish; a check that could not be made (the
// database unreachable, the node closing) is ok false with no reason.
func (n *Node) keyStillValid(s *stream, key string, timeout time.Duration) (label, reason string, ok bool) {
	ctx, cancel := context.WithTimeout(n.ctx, timeout)
	name, holder, err := n.cfg.Rooms.PublishKey(ctx, s.roomID, key)
	cancel()
	switch {
	case errors.Is(err, rooms.ErrKeyHolderRevoked):
		return "holder_revoked", reasonHolderRevoked, false
	case errors.Is(err, rooms.ErrBadStreamKey), err == nil && (name != s.name || holder != s.publisher):
		return "bad_key", reasonBadKey, false
	case err != nil:
		return "", "", false
	}
	return "", "", true
}

// servePlay serves an RTMP player (ffplay, ffmpeg -i, OBS media sources)
// of rtmp://<gateway>/<room_id>/<name>?token=<access token>, authorised
// like HTTP-FLV: the token's user must be an active member of the room.
// The player gets the codec headers and the GOP cache, then live tags,
// from the same bounded viewer queue as an HTTP-FLV viewer.
func (n *Node) servePlay(c net.Conn, sc *gortmplib.ServerConn) error {
	roomID, name, ok := splitPublishPath(sc.URL.Path)
	token := sc.URL.Query().Get("token")
	switch {
	case !ok || !validName(name):
		_ = sc.RejectAction()
		return errors.New("play: path is not /<room_id>/<name>")
	case token == "" || len(token) > 4096:
		_ = sc.RejectAction()
		return errors.New("play: no access token (add ?token=<access token> to the URL)")
	}
	ctx, cancel := context.WithTimeout(n.ctx, handshakeTimeout)
	defer cancel()
	s, v, err := n.admitViewer(ctx, token, roomID, name)
	if err != nil {
		_ = sc.RejectAction()
		return fmt.Errorf("play: %w", err)
	}
	defer n.leave(s, v)
	if err := sc.AcceptAction(); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Time{})
	// The player's acknowledgements and pings are read and dropped, so
	// its writes never stall; the reader ends when the connection closes.
	left := make(chan struct{})
	go func() {
		defer close(left)
		for {
			if _, err := sc.Read(); err != nil {
				return
			}
		}
	}()
	defer func() {
		_ = c.Close()
		<-left
	}()
	for {
		select {
		case t := <-v.ch:
			v.took(t, n.cfg.MaxLag)
			m, ok, err := messageFromTag(t)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			_ = c.SetWriteDeadline(time.Now().Add(n.cfg.ViewerWriteTimeout))
			if err := sc.Write(m); err != nil {
				return err
			}
		case <-s.done:
			return nil
		case <-v.revoked:
			return nil // banned or left (Revoke)
		case <-left:
			return nil
		case <-n.ctx.Done():
			return nil
		}
	}
}
