package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/gateway"
)

// errorLog records the messages the gateway logs at error level.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

func (l *errorLog) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// startGatewayLogged is startGateway with the gateway's errors recorded.
func startGatewayLogged(t *testing.T, mutate func(*gateway.Config)) (*gateway.Gateway, *errorLog) {
	t.Helper()
	log := &errorLog{}
	return startGatewayWithLog(t, mutate, slog.New(log)), log
}

// A handshake whose query, X-Forwarded-For or Sec-WebSocket-Protocol holds
// bytes that are not UTF-8 (raw, not percent-encoded) is served like any
// other: the business gets its ConnOpen with each invalid sequence
// replaced by U+FFFD, and its messages. Before the fix the ConnOpen did not
// encode and was dropped without a word, so the client was online but
// unknown to the business.
func TestHandshakeNotUTF8ReachesBusiness(t *testing.T) {
	t.Parallel()
	g, log := startGatewayLogged(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	c, status := dialWSStatus(t, g, wsOpts{query: "a=\xff&b=2", header: http.Header{
		"X-Forwarded-For":        {"203.0.113.9\xfe"},
		"Sec-WebSocket-Protocol": {"chat\xff, v2"},
	}})
	if c == nil {
		t.Fatalf("upgrade: HTTP %d, want 101", status)
	}
	open := b.connOpen()
	if open.RawQuery != "a=\uFFFD&b=2" || open.XForwardedFor != "203.0.113.9\uFFFD" ||
		!slices.Equal(open.SubProtocol, []string{"chat\uFFFD", "v2"}) {
		t.Errorf("ConnOpen %q %q %q, want the handshake with U+FFFD for the bad bytes", open.RawQuery, open.XForwardedFor, open.SubProtocol)
	}
	c.sendText("001hello")
	tr := &netsvr.Transfer{}
	b.recv(netsvr.Cmd_Transfer, tr)
	if tr.UniqId != open.UniqId || string(tr.Data) != "hello" {
		t.Errorf("Transfer %v, want hello from %s", tr, open.UniqId)
	}
	// Made valid where it entered: the encoder's fallback was not needed.
	if msgs := log.messages(); len(msgs) > 0 {
		t.Errorf("errors logged: %q", msgs)
	}
}

// A custom uniqId that is not UTF-8 is refused at the upgrade like any
// other bad one (400 Custom uniqId wrong): it could not travel in the
// protocol's string fields. Before the fix it was accepted and every later
// list or ConnInfo answer that contained it was dropped, so the business's
// requests went unanswered.
func TestCustomUniqIDNotUTF8Refused(t *testing.T) {
	t.Parallel()
	g, log := startGatewayLogged(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	tok := &netsvr.ConnOpenCustomUniqIdTokenResp{}
	b.call(netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, tok)
	if _, status := dialWSStatus(t, g, wsOpts{query: "uniqId=%FF%FEbad&token=" + tok.Token}); status != http.StatusBadRequest {
		t.Errorf("uniqId %%FF%%FEbad: HTTP %d, want 400", status)
	}
	list := &netsvr.UniqIdListResp{}
	b.call(netsvr.Cmd_UniqIdList, nil, list)
	if len(list.UniqIds) != 0 {
		t.Errorf("UniqIdList %q, want none", list.UniqIds)
	}
	if msgs := log.messages(); len(msgs) > 0 {
		t.Errorf("errors logged: %q", msgs)
	}
}
