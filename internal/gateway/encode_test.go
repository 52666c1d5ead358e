package gateway

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
)

// errorCount counts the records logged at error level.
type errorCount struct {
	mu sync.Mutex
	n  int
}

func (l *errorCount) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorCount) Handle(context.Context, slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return nil
}
func (l *errorCount) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorCount) WithGroup(string) slog.Handler      { return l }

func (l *errorCount) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// decodeFrame checks a business frame's cmd and decodes its body into m.
func decodeFrame(t *testing.T, f []byte, cmd netsvr.Cmd, m proto.Message) {
	t.Helper()
	if len(f) < 8 {
		t.Fatalf("frame %q, want a %s frame", f, cmd)
	}
	got, err := parseFrame(f[4:])
	if err != nil || got.cmd != uint32(cmd) {
		t.Fatalf("frame %q: cmd %d, %v; want %s", f, got.cmd, err, cmd)
	}
	if err := proto.Unmarshal(got.body, m); err != nil {
		t.Fatal(err)
	}
}

// A message with invalid UTF-8 in its strings (which the gateway never
// builds on purpose) is still sent, with U+FFFD for each bad sequence, and
// the failure is logged at error level instead of the frame being dropped.
func TestMarshalFrameNotUTF8(t *testing.T) {
	t.Parallel()
	log := &errorCount{}
	g := &Gateway{log: slog.New(log)}

	list := &netsvr.UniqIdListResp{}
	decodeFrame(t, g.marshalFrame(netsvr.Cmd_UniqIdList, &netsvr.UniqIdListResp{ServerId: 7, UniqIds: []string{"A", "\xffB"}}), netsvr.Cmd_UniqIdList, list)
	if list.ServerId != 7 || !slices.Equal(list.UniqIds, []string{"A", "\uFFFDB"}) {
		t.Errorf("UniqIdListResp %v", list)
	}
	info := &netsvr.ConnInfoResp{}
	decodeFrame(t, g.marshalFrame(netsvr.Cmd_ConnInfo, &netsvr.ConnInfoResp{Items: map[string]*netsvr.ConnInfoResp_Item{
		"\xfeC": {Session: "s\xff", Topics: []string{"t", "\xff"}},
		"D":     {Session: "ok"},
	}}), netsvr.Cmd_ConnInfo, info)
	c, d := info.Items["\uFFFDC"], info.Items["D"]
	if len(info.Items) != 2 || c.GetSession() != "s\uFFFD" || !slices.Equal(c.GetTopics(), []string{"t", "\uFFFD"}) || d.GetSession() != "ok" {
		t.Errorf("ConnInfoResp %v", info)
	}
	if n := log.count(); n != 2 {
		t.Errorf("%d errors logged, want 2 (one per frame)", n)
	}
	// A valid message is encoded as it is, quietly.
	open := &netsvr.ConnOpen{}
	decodeFrame(t, g.marshalFrame(netsvr.Cmd_ConnOpen, &netsvr.ConnOpen{UniqId: "E", RawQuery: "q=é"}), netsvr.Cmd_ConnOpen, open)
	if open.UniqId != "E" || open.RawQuery != "q=é" || log.count() != 2 {
		t.Errorf("ConnOpen %v, %d errors logged", open, log.count())
	}
}

// A request whose answer does not encode is answered all the same, so the
// answers that follow still match their requests (the protocol has no
// correlation id). The hub here holds an id that is not UTF-8, as a
// connection admitted by a future bug would.
func TestDispatchAnswersWhatDoesNotEncode(t *testing.T) {
	t.Parallel()
	log := &errorCount{}
	g, err := New(DefaultConfig(), slog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	g.hub.add(&client{uniqID: "\xffbad"})
	g.hub.subscribe("\xffbad", []string{"t"})
	conn, peer := net.Pipe()
	t.Cleanup(func() { _ = conn.Close(); _ = peer.Close() })
	b := newBusiness(g, conn)
	topicReq, _ := proto.Marshal(&netsvr.TopicUniqIdListReq{Topics: []string{"t"}})
	for _, req := range []struct {
		cmd  netsvr.Cmd
		body []byte
	}{{netsvr.Cmd_UniqIdList, nil}, {netsvr.Cmd_TopicUniqIdList, topicReq}, {netsvr.Cmd_UniqIdCount, nil}} {
		if err := g.dispatch(b, uint32(req.cmd), req.body); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.out) != 3 {
		t.Fatalf("%d answers queued for 3 requests", len(b.out))
	}
	list, topic, count := &netsvr.UniqIdListResp{}, &netsvr.TopicUniqIdListResp{}, &netsvr.UniqIdCountResp{}
	decodeFrame(t, <-b.out, netsvr.Cmd_UniqIdList, list)
	decodeFrame(t, <-b.out, netsvr.Cmd_TopicUniqIdList, topic)
	decodeFrame(t, <-b.out, netsvr.Cmd_UniqIdCount, count)
	if !slices.Equal(list.UniqIds, []string{"\uFFFDbad"}) || !slices.Equal(topic.Items["t"].GetUniqIds(), []string{"\uFFFDbad"}) || count.Count != 1 {
		t.Errorf("answers %v, %v, %v", list, topic, count)
	}
	if n := log.count(); n != 2 {
		t.Errorf("%d errors logged, want 2 (the two answers that did not encode)", n)
	}
}
