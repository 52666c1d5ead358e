package ratelimit

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// The subjects that carry each throttle's outcomes between the nodes of
// a tier: one per throttle, so the counts of one never reach another.
const (
	// SubjectOperatorLogins: the server's operator logins.
	SubjectOperatorLogins = "croupier.logins"
	// SubjectPlayerLogins: the gateway's player logins (rooms accounts).
	SubjectPlayerLogins = "croupier.rooms.logins"
	// SubjectRoomPasswords: the gateway's wrong room passwords.
	SubjectRoomPasswords = "croupier.rooms.passwords"
)

// maxOutcome bounds a received outcome: a username is at most 64 bytes
// and an address a few dozen.
const maxOutcome = 1024

// loginOutcome is one node's finished login attempt.
type loginOutcome struct {
	Node   string `json:"node"`
	User   string `json:"user"`
	Source string `json:"source,omitempty"`
	OK     bool   `json:"ok"`
}

// Share makes the throttle count the login failures and successes of
// every node of its tier on the bus, published on subject (one of the
// Subject constants; docs/cluster.md, "Login throttling"): each
// attempt that fails or succeeds here is published, and the other nodes'
// are applied as if they had happened here. It is approximate: outcomes
// arrive a moment later (a burst of guesses spread over nodes at the same
// instant can pass a few more than UserFree), an attempt in flight on
// another node does not hold back attempts here, a node that joins starts
// with what it hears from then on, and while the bus is down each node
// throttles alone. node is this node's id. Call it once; the subscription
// ends with the connection.
func (t *LoginThrottle) Share(nc *nats.Conn, subject, node string, log *slog.Logger) error {
	if nc == nil || subject == "" || node == "" {
		return errors.New("ratelimit: Share needs a connection, a subject and a node id")
	}
	if log == nil {
		log = slog.Default()
	}
	var warnOnce sync.Once
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var o loginOutcome
		if len(m.Data) > maxOutcome || json.Unmarshal(m.Data, &o) != nil || o.User == "" {
			warnOnce.Do(func() { log.Warn("undecodable login outcome on the bus (reported once)", "bytes", len(m.Data)) })
			return
		}
		if o.Node == node {
			return // ours, already counted
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		now := t.now()
		if o.OK {
			t.succeeded(o.User, o.Source, now)
		} else {
			t.failed(o.User, o.Source, now)
		}
	}); err != nil {
		return err
	}
	if err := nc.Flush(); err != nil {
		return err
	}
	t.mu.Lock()
	t.share = func(user, source string, ok bool) {
		b, _ := json.Marshal(loginOutcome{Node: node, User: user, Source: source, OK: ok})
		if err := nc.Publish(subject, b); err != nil {
			log.Warn("login outcome not shared with the other nodes", "err", err)
		}
	}
	t.mu.Unlock()
	return nil
}

// shared publishes an outcome when Share was called.
func (t *LoginThrottle) shared(user, source string, ok bool) {
	t.mu.Lock()
	share := t.share
	t.mu.Unlock()
	if share != nil {
		share(user, source, ok)
	}
}
