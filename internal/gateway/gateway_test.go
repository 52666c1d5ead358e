package gateway_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/internal/gateway"
)

func withConnWorkers(c *gateway.Config) { c.ConnOpenWorkerID, c.ConnCloseWorkerID = 1, 1 }

// openClient connects a WebSocket and returns it with the uniqId the
// business learned from ConnOpen.
func openClient(t *testing.T, g *gateway.Gateway, b *biz) (*wsc, string) {
	t.Helper()
	c := dialWS(t, g)
	return c, b.connOpen().UniqId
}

func TestRegisterRefusals(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	cases := []struct {
		name     string
		workerID int32
		serverID uint32
		want     netsvr.RegisterRespCode
	}{
		{"wrong server id", 1, 8, netsvr.RegisterRespCode_ServerIdInconsistent},
		{"workerId 0", 0, 7, netsvr.RegisterRespCode_WorkerIdOverflow},
		{"workerId 1000", 1000, 7, netsvr.RegisterRespCode_WorkerIdOverflow},
	}
	for _, tc := range cases {
		b := dialBiz(t, g)
		if r := b.register(tc.workerID, tc.serverID); r.Code != tc.want || r.Message == "" {
			t.Errorf("%s: got %v, want code %v with a message", tc.name, r, tc.want)
		}
	}
	b := dialBiz(t, g)
	b.mustRegister(999)
	if r := b.register(999, 7); r.Code != netsvr.RegisterRespCode_DuplicateRegister {
		t.Errorf("duplicate register: %v", r)
	}
	// A body that does not decode.
	b.writeRaw([]byte{0, 0, 0, 6, 0x35, 0xA4, 0xF4, 0xB9, 0xFF, 0xFF})
	r := &netsvr.RegisterResp{}
	b.recv(netsvr.Cmd_Register, r)
	if r.Code != netsvr.RegisterRespCode_UnmarshalError {
		t.Errorf("undecodable register: %v", r)
	}
}

func TestBusinessHeartbeatAndUnknownCmd(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	b := dialBiz(t, g)
	b.writeRaw(append([]byte{0, 0, 0, 9}, "~3yPvmnz~"...))
	p, err := b.readPayload()
	if err != nil || string(p) != "~u38NvZ~" {
		t.Fatalf("heartbeat answer %q, %v", p, err)
	}
	b.send(netsvr.Cmd(123456789), nil)
	b.expectClosed()
}

func TestBusinessIdleClosed(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.ReadDeadline = time.Second })
	start := time.Now() // before the dial: the read deadline starts after it
	b := dialBiz(t, g)
	b.expectClosed()
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("idle business closed after %s, before the 1s read deadline", d)
	}
}

func TestTransferRoutingAndConnEvents(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b1, b2 := dialBiz(t, g), dialBiz(t, g)
	b1.mustRegister(1)
	c, status := dialWSStatus(t, g, wsOpts{query: "a=1&b=2", header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}})
	if c == nil {
		t.Fatalf("upgrade: %d", status)
	}
	open := b1.connOpen()
	if !regexp.MustCompile(`^07[0-9A-F]{16}$`).MatchString(open.UniqId) {
		t.Errorf("uniqId %q: want 18 upper-case hex starting with server id 07", open.UniqId)
	}
	if open.RawQuery != "a=1&b=2" || open.XForwardedFor != "203.0.113.9" {
		t.Errorf("ConnOpen %v", open)
	}
	b2.mustRegister(1) // now two businesses share workerId 1: round-robin
	c.sendText("001hello")
	c.sendText("001world")
	got := map[string]bool{}
	for _, b := range []*biz{b1, b2} {
		tr := &netsvr.Transfer{}
		b.recv(netsvr.Cmd_Transfer, tr)
		if tr.UniqId != open.UniqId {
			t.Errorf("Transfer uniqId %q, want %q", tr.UniqId, open.UniqId)
		}
		got[string(tr.Data)] = true
	}
	if !got["hello"] || !got["world"] {
		t.Errorf("round-robin delivered %v, want hello to one and world to the other", got)
	}
	c.sendText("abc")
	c.expectData("WorkerId wrong")
	// Session set by the business travels with Transfer and ConnClose.
	b1.send(netsvr.Cmd_ConnInfoUpdate, &netsvr.ConnInfoUpdate{UniqId: open.UniqId, NewSession: "user-42", Data: []byte("welcome")})
	c.expectData("welcome")
	// With b2 unregistered, b1 receives everything of workerId 1.
	b2.call(netsvr.Cmd_Unregister, &netsvr.UnRegisterReq{WorkerId: 1}, &netsvr.UnRegisterResp{})
	c.writeFrame(true, opBinary, []byte("001bin"))
	tr := &netsvr.Transfer{}
	b1.recv(netsvr.Cmd_Transfer, tr)
	if tr.Session != "user-42" || string(tr.Data) != "bin" {
		t.Errorf("Transfer %v", tr)
	}
	c.writeFrame(true, opClose, []byte{0x03, 0xE8})
	cl := &netsvr.ConnClose{}
	b1.recv(netsvr.Cmd_ConnClose, cl)
	if cl.UniqId != open.UniqId || cl.Session != "user-42" {
		t.Errorf("ConnClose %v", cl)
	}
}

func TestConnOpenWorkerMissingDropsClient(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	c := dialWS(t, g)
	if code := c.expectClose(); code != 1013 {
		t.Fatalf("close code %d, want 1013", code)
	}
}

func TestCastsTopicsAndQueries(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	a, idA := openClient(t, g, b)
	c, idC := openClient(t, g, b)

	b.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: idA, Data: []byte("to a")})
	a.expectData("to a")
	b.send(netsvr.Cmd_Multicast, &netsvr.Multicast{UniqIds: []string{idA, idC, "offline"}, Data: []byte("multi")})
	a.expectData("multi")
	c.expectData("multi")
	b.send(netsvr.Cmd_Broadcast, &netsvr.Broadcast{Data: []byte("all")})
	a.expectData("all")
	c.expectData("all")
	b.send(netsvr.Cmd_SingleCastBulk, &netsvr.SingleCastBulk{UniqIds: []string{idA, idC}, Data: [][]byte{[]byte("bulk a"), []byte("bulk c")}})
	a.expectData("bulk a")
	c.expectData("bulk c")

	b.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: idA, Topics: []string{"room1", "room2"}, Data: []byte("subscribed")})
	a.expectData("subscribed")
	b.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: idC, Topics: []string{"room1"}})
	b.send(netsvr.Cmd_TopicPublish, &netsvr.TopicPublish{Topics: []string{"room1", "room2"}, Data: []byte("pub")})
	a.expectData("pub") // once, although subscribed to both
	c.expectData("pub")
	b.send(netsvr.Cmd_TopicPublishBulk, &netsvr.TopicPublishBulk{Topics: []string{"room2", "room1"}, Data: [][]byte{[]byte("r2"), []byte("r1")}})
	a.expectData("r2")
	a.expectData("r1")
	c.expectData("r1")

	cnt := &netsvr.UniqIdCountResp{}
	b.call(netsvr.Cmd_UniqIdCount, nil, cnt)
	if cnt.Count != 2 || cnt.ServerId != 7 {
		t.Errorf("UniqIdCount %v", cnt)
	}
	list := &netsvr.UniqIdListResp{}
	b.call(netsvr.Cmd_UniqIdList, nil, list)
	want := []string{idA, idC}
	slices.Sort(want)
	if !slices.Equal(list.UniqIds, want) {
		t.Errorf("UniqIdList %v, want %v", list.UniqIds, want)
	}
	if got := b.online(idA, "nobody"); !slices.Equal(got, []string{idA}) {
		t.Errorf("CheckOnline %v", got)
	}
	tc := &netsvr.TopicCountResp{}
	b.call(netsvr.Cmd_TopicCount, nil, tc)
	tl := &netsvr.TopicListResp{}
	b.call(netsvr.Cmd_TopicList, nil, tl)
	if tc.Count != 2 || !slices.Equal(tl.Topics, []string{"room1", "room2"}) {
		t.Errorf("TopicCount %v TopicList %v", tc, tl)
	}
	tul := &netsvr.TopicUniqIdListResp{}
	b.call(netsvr.Cmd_TopicUniqIdList, &netsvr.TopicUniqIdListReq{Topics: []string{"room1", "none"}}, tul)
	if len(tul.Items) != 1 || !slices.Equal(tul.Items["room1"].GetUniqIds(), want) {
		t.Errorf("TopicUniqIdList %v", tul)
	}
	tuc := &netsvr.TopicUniqIdCountResp{}
	b.call(netsvr.Cmd_TopicUniqIdCount, &netsvr.TopicUniqIdCountReq{CountAll: true}, tuc)
	if tuc.Items["room1"] != 2 || tuc.Items["room2"] != 1 || len(tuc.Items) != 2 {
		t.Errorf("TopicUniqIdCount all %v", tuc.Items)
	}
	b.call(netsvr.Cmd_TopicUniqIdCount, &netsvr.TopicUniqIdCountReq{Topics: []string{"room2"}}, tuc)
	if tuc.Items["room2"] != 1 || len(tuc.Items) != 1 {
		t.Errorf("TopicUniqIdCount room2 %v", tuc.Items)
	}

	b.send(netsvr.Cmd_TopicUnsubscribe, &netsvr.TopicUnsubscribe{UniqId: idA, Topics: []string{"room2"}, Data: []byte("left")})
	a.expectData("left")
	ci := &netsvr.ConnInfoResp{}
	b.call(netsvr.Cmd_ConnInfo, &netsvr.ConnInfoReq{UniqIds: []string{idA, "nobody"}}, ci)
	if len(ci.Items) != 1 || !slices.Equal(ci.Items[idA].GetTopics(), []string{"room1"}) {
		t.Errorf("ConnInfo %v", ci)
	}
	b.send(netsvr.Cmd_TopicDelete, &netsvr.TopicDelete{Topics: []string{"room1"}, Data: []byte("room closed")})
	a.expectData("room closed")
	c.expectData("room closed")
	b.call(netsvr.Cmd_TopicCount, nil, tc)
	if tc.Count != 0 {
		t.Errorf("topics after delete: %d", tc.Count)
	}

	// ConnInfoDelete clears the session and the topics, then sends data.
	b.send(netsvr.Cmd_ConnInfoUpdate, &netsvr.ConnInfoUpdate{UniqId: idC, NewSession: "s", NewTopics: []string{"t"}})
	b.send(netsvr.Cmd_ConnInfoDelete, &netsvr.ConnInfoDelete{UniqId: idC, DelSession: true, DelTopic: true, Data: []byte("cleared")})
	c.expectData("cleared")
	b.call(netsvr.Cmd_ConnInfo, &netsvr.ConnInfoReq{UniqIds: []string{idC}}, ci)
	if it := ci.Items[idC]; it == nil || it.Session != "" || len(it.Topics) != 0 {
		t.Errorf("ConnInfo after delete %v", ci)
	}

	// Unregister: the business no longer receives client messages.
	ur := &netsvr.UnRegisterResp{}
	b.call(netsvr.Cmd_Unregister, &netsvr.UnRegisterReq{WorkerId: 1}, ur)
	a.sendText("001lost")
	b.call(netsvr.Cmd_UniqIdCount, nil, cnt) // the next frame is this answer, not a Transfer
}

func TestConnInfoUpdateRenameDisplaces(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	a, idA := openClient(t, g, b)
	old, idOld := openClient(t, g, b)
	b.send(netsvr.Cmd_ConnInfoUpdate, &netsvr.ConnInfoUpdate{UniqId: idA, NewUniqId: idOld, DataAsNewUniqIdExisted: []byte("logged in elsewhere"), Data: []byte("renamed")})
	a.expectData("renamed")
	old.expectData("logged in elsewhere")
	if got := b.online(idA, idOld); !slices.Equal(got, []string{idOld}) {
		t.Fatalf("online after rename %v, want only %s", got, idOld)
	}
	b.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: idOld, Data: []byte("to the renamed one")})
	a.expectData("to the renamed one")
	if code := old.expectClose(); code != 1000 {
		t.Errorf("displaced connection close code %d", code)
	}
}

func TestForceOfflineTiming(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	withData, idW := openClient(t, g, b)
	without, idN := openClient(t, g, b)

	// Both clocks start before the command is sent, so the gateway's
	// 3 s delay lies wholly inside what they measure, however late the
	// test reads.
	start := time.Now()
	b.send(netsvr.Cmd_ForceOffline, &netsvr.ForceOffline{UniqIds: []string{idN}})
	if code := without.expectClose(); code != 1000 {
		t.Errorf("close code %d", code)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("ForceOffline without data took %s, want at once (not after the 3 s delay)", d)
	}
	start = time.Now()
	b.send(netsvr.Cmd_ForceOffline, &netsvr.ForceOffline{UniqIds: []string{idW}, Data: []byte("bye")})
	withData.expectData("bye")
	withData.expectClose()
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("ForceOffline with data closed after %s, want 3 s after the data", d)
	}
}

func TestForceOfflineGuestSparesSessions(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	guest, idG := openClient(t, g, b)
	member, idM := openClient(t, g, b)
	b.send(netsvr.Cmd_ConnInfoUpdate, &netsvr.ConnInfoUpdate{UniqId: idM, NewSession: "logged-in"})
	start := time.Now() // before the send: the delay starts after it
	b.send(netsvr.Cmd_ForceOfflineGuest, &netsvr.ForceOfflineGuest{UniqIds: []string{idG, idM}, Delay: 1})
	if code := guest.expectClose(); code != 1000 {
		t.Errorf("guest close code %d", code)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("guest closed after %s, before its 1s delay", d)
	}
	waitFor(t, "only the member to stay online", func() bool { return slices.Equal(b.online(idG, idM), []string{idM}) })
	b.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: idM, Data: []byte("still here")})
	member.expectData("still here")
}

func TestClientHeartbeatsAndFragments(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil)
	b := dialBiz(t, g)
	b.mustRegister(2)
	c := dialWS(t, g)
	c.sendText("~3yPvmnz~")
	if op, p := c.readMessage(); op != opText || string(p) != "~u38NvZ~" {
		t.Errorf("text heartbeat answer op %d %q", op, p)
	}
	c.writeFrame(true, opBinary, []byte("~3yPvmnz~"))
	if op, p := c.readMessage(); op != opBinary || string(p) != "~u38NvZ~" {
		t.Errorf("binary heartbeat answer op %d %q", op, p)
	}
	c.writeFrame(true, opPing, []byte("x"))
	if op, p := c.readMessage(); op != opPong || string(p) != "~u38NvZ~" {
		t.Errorf("ping answer op %d %q", op, p)
	}
	// A message in three fragments, a ping between them.
	c.writeFrame(false, opText, []byte("00"))
	c.writeFrame(false, opCont, []byte("2frag"))
	c.writeFrame(true, opPing, nil)
	c.writeFrame(true, opCont, []byte("mented"))
	if op, _ := c.readMessage(); op != opPong {
		t.Errorf("ping inside fragments: op %d", op)
	}
	tr := &netsvr.Transfer{}
	b.recv(netsvr.Cmd_Transfer, tr)
	if string(tr.Data) != "fragmented" {
		t.Errorf("fragmented Transfer %q", tr.Data)
	}
}

func TestClientCloseCodes(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.ReceivePackLimit = 1024 })
	big := dialWS(t, g)
	big.writeFrame(true, opBinary, bytes.Repeat([]byte("x"), 2048))
	if code := big.expectClose(); code != 1009 {
		t.Errorf("oversized message: close code %d, want 1009", code)
	}
	// Oversized in fragments: each is small, the message is not.
	frag := dialWS(t, g)
	frag.writeFrame(false, opBinary, bytes.Repeat([]byte("x"), 800))
	frag.writeFrame(true, opCont, bytes.Repeat([]byte("x"), 800))
	if code := frag.expectClose(); code != 1009 {
		t.Errorf("oversized fragmented message: close code %d, want 1009", code)
	}
	bad := dialWS(t, g)
	bad.writeFrame(true, opText, []byte{'0', '0', '1', 0xff, 0xfe})
	if code := bad.expectClose(); code != 1007 {
		t.Errorf("invalid UTF-8: close code %d, want 1007", code)
	}
}

func TestClientIdleClosed(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.ReadDeadline = time.Second })
	c := dialWS(t, g)
	start := time.Now()
	c.expectClose()
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("idle client closed after %s, before the 1s read deadline", d)
	}
}

func TestUpgradeRefusals(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) {
		c.MaxOnline = 1
		c.AllowedOrigins = []string{"https://game.example"}
	})
	if _, status := dialWSStatus(t, g, wsOpts{header: http.Header{"Origin": {"https://evil.example"}}}); status != http.StatusForbidden {
		t.Errorf("foreign origin: HTTP %d, want 403", status)
	}
	if c, status := dialWSStatus(t, g, wsOpts{header: http.Header{"Origin": {"https://game.example"}}}); c == nil {
		t.Fatalf("allowed origin: HTTP %d", status)
	}
	if _, status := dialWSStatus(t, g, wsOpts{}); status != http.StatusServiceUnavailable {
		t.Errorf("over max_online: HTTP %d, want 503", status)
	}
}

// A client that reads nothing is cut off once its send buffer limit is
// exceeded, while another client keeps receiving every message.
func TestSlowClientCutOff(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) {
		withConnWorkers(c)
		c.SendBufferLimit = 64 << 10
	})
	b := dialBiz(t, g)
	b.mustRegister(1)
	_, idSlow := openClient(t, g, b)
	fast, _ := openClient(t, g, b)
	msg := bytes.Repeat([]byte("m"), 32<<10)
	const n = 400 // 12.8 MB: more than any loopback socket buffer holds
	// Each broadcast waits until the fast client has read the one before,
	// so its queue never holds more than one message however the machine
	// schedules its reader: only the slow client's queue grows.
	for i := 0; i < n; i++ {
		b.send(netsvr.Cmd_Broadcast, &netsvr.Broadcast{Data: msg})
		if _, p, err := fastRead(fast); err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("fast client, message %d: %v", i, err)
		}
	}
	waitFor(t, "the slow client to be cut off", func() bool { return len(b.online(idSlow)) == 0 })
}

func fastRead(c *wsc) (byte, []byte, error) {
	_, op, p, err := c.readFrame()
	return op, p, err
}

func TestCustomUniqIDToken(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) {
		withConnWorkers(c)
		// Long enough for the dials that must find a token fresh on a
		// loaded machine.
		c.CustomUniqIDTokenTTL = 3 * time.Second
	})
	b := dialBiz(t, g)
	b.mustRegister(1)
	tok := &netsvr.ConnOpenCustomUniqIdTokenResp{}
	b.call(netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, tok)
	if tok.Token == "" || tok.UniqId == "" {
		t.Fatalf("token response %v", tok)
	}
	if c, status := dialWSStatus(t, g, wsOpts{query: "uniqId=player-1&token=" + tok.Token}); c == nil {
		t.Fatalf("custom uniqId with a fresh token: HTTP %d", status)
	}
	if open := b.connOpen(); open.UniqId != "player-1" {
		t.Errorf("ConnOpen uniqId %q, want player-1", open.UniqId)
	}
	if _, status := dialWSStatus(t, g, wsOpts{query: "uniqId=player-2&token=" + tok.Token}); status != http.StatusBadRequest {
		t.Errorf("reused token: HTTP %d, want 400", status)
	}
	if _, status := dialWSStatus(t, g, wsOpts{query: "uniqId=player-3"}); status != http.StatusBadRequest {
		t.Errorf("no token: HTTP %d, want 400", status)
	}
	b.call(netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, tok)
	if _, status := dialWSStatus(t, g, wsOpts{query: "uniqId=" + string(bytes.Repeat([]byte("x"), 129)) + "&token=" + tok.Token}); status != http.StatusBadRequest {
		t.Errorf("129-character uniqId: HTTP %d, want 400", status)
	}
	b.call(netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, tok)
	time.Sleep(3100 * time.Millisecond) // the behaviour under test: expiry after the TTL
	if _, status := dialWSStatus(t, g, wsOpts{query: "uniqId=player-4&token=" + tok.Token}); status != http.StatusBadRequest {
		t.Errorf("expired token: HTTP %d, want 400", status)
	}
}

func TestLimitDropsOverRate(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.LimitGroups = []string{"chat=1:1,3"} })
	limited, marker := dialBiz(t, g), dialBiz(t, g)
	limited.mustRegister(1)
	marker.mustRegister(2)
	c := dialWS(t, g)
	for i := 0; i < 10; i++ {
		c.sendText("001burst")
	}
	// A client's messages are handled in order: once the unlimited marker
	// arrives, every burst message has been routed or dropped.
	c.sendText("002marker")
	tr := &netsvr.Transfer{}
	marker.recv(netsvr.Cmd_Transfer, tr)
	limited.recv(netsvr.Cmd_Transfer, tr) // the one token of the bucket
	resp := &netsvr.LimitResp{}
	limited.call(netsvr.Cmd_Limit, &netsvr.LimitReq{Items: []*netsvr.LimitReq_Item{
		{Name: "chat", Concurrency: 5}, {Name: "unknown", Concurrency: 3}, {Name: "chat", Concurrency: -1},
	}}, resp) // fails if a second Transfer came first
	if len(resp.Items) != 1 || resp.Items[0].Name != "chat" || resp.Items[0].Concurrency != 5 || !slices.Equal(resp.Items[0].WorkerIds, []int32{1, 3}) {
		t.Errorf("LimitResp %v", resp)
	}
}

func TestMetricsCounts(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) {
		withConnWorkers(c)
		c.MetricsItems = []int{0, 1, 2, 3, 4, 5, 6}
	})
	b := dialBiz(t, g)
	b.mustRegister(1)
	a, idA := openClient(t, g, b)
	gone, _ := openClient(t, g, b)
	gone.writeFrame(true, opClose, []byte{0x03, 0xE8})
	b.recv(netsvr.Cmd_ConnClose, &netsvr.ConnClose{})
	a.sendText("~3yPvmnz~")
	a.expectData("~u38NvZ~")
	a.sendText("001abcdef")
	b.recv(netsvr.Cmd_Transfer, &netsvr.Transfer{})
	b.send(netsvr.Cmd_SingleCast, &netsvr.SingleCast{UniqId: idA, Data: []byte("0123456789")})
	a.expectData("0123456789")
	m := &netsvr.MetricsResp{}
	b.call(netsvr.Cmd_Metrics, nil, m)
	want := map[int32]int64{0: 2, 1: 1, 2: 1, 3: 1, 4: 9, 5: 1, 6: 10}
	for item, count := range want {
		it := m.Items[item]
		if it.GetCount() != count {
			t.Errorf("metrics item %d: count %d, want %d", item, it.GetCount(), count)
		}
		if it.GetMeanRate() <= 0 || it.GetMeanRateMax() < it.GetMeanRate() {
			t.Errorf("metrics item %d: mean rate %v, max %v", item, it.GetMeanRate(), it.GetMeanRateMax())
		}
	}
	if m.ServerId != 7 || len(m.Items) != 7 {
		t.Errorf("MetricsResp server %d with %d items", m.ServerId, len(m.Items))
	}
}

func TestMetricsOnlyConfiguredItems(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.MetricsItems = []int{0, 3} })
	b := dialBiz(t, g)
	m := &netsvr.MetricsResp{}
	b.call(netsvr.Cmd_Metrics, nil, m)
	if len(m.Items) != 2 || m.Items[0] == nil || m.Items[3] == nil {
		t.Errorf("items %v, want 0 and 3", m.Items)
	}
}

// Fan-outs that arrive back to back (in one TCP segment) are delivered
// completely and in order, topic by topic.
func TestBackToBackFanOutOrder(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	a, idA := openClient(t, g, b)
	c, idC := openClient(t, g, b)
	b.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: idA, Topics: []string{"x"}})
	b.send(netsvr.Cmd_TopicSubscribe, &netsvr.TopicSubscribe{UniqId: idC, Topics: []string{"y"}})
	b.online(idA) // the subscriptions are in force once this is answered
	var all []byte
	var wantA, wantC []string
	for i := 0; i < 150; i++ {
		var cmd netsvr.Cmd
		var m proto.Message
		msg := fmt.Sprintf("m%d", i)
		switch i % 5 {
		case 0, 1, 2:
			cmd, m = netsvr.Cmd_Broadcast, &netsvr.Broadcast{Data: []byte(msg)}
			wantA, wantC = append(wantA, msg), append(wantC, msg)
		case 3:
			cmd, m = netsvr.Cmd_TopicPublish, &netsvr.TopicPublish{Topics: []string{"x"}, Data: []byte(msg)}
			wantA = append(wantA, msg)
		case 4:
			cmd, m = netsvr.Cmd_TopicPublish, &netsvr.TopicPublish{Topics: []string{"y"}, Data: []byte(msg)}
			wantC = append(wantC, msg)
		}
		body, _ := proto.Marshal(m)
		all = binary.BigEndian.AppendUint32(all, uint32(4+len(body)))
		all = binary.BigEndian.AppendUint32(all, uint32(cmd))
		all = append(all, body...)
	}
	b.writeRaw(all)
	for _, w := range wantA {
		a.expectData(w)
	}
	for _, w := range wantC {
		c.expectData(w)
	}
}

func TestConnectRatePerIP(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.ConnectRatePerIP, c.ConnectBurstPerIP = 0.001, 2 })
	dialWS(t, g)
	dialWS(t, g)
	if _, status := dialWSStatus(t, g, wsOpts{}); status != http.StatusTooManyRequests {
		t.Errorf("third connection within the burst of 2: HTTP %d, want 429", status)
	}
}

// TestHalfSentHandshakeClosed: a client that never finishes its upgrade
// request is closed after handshake_timeout, so half-sent handshakes cannot
// hold sockets for read_deadline; an upgraded client lives on.
func TestHalfSentHandshakeClosed(t *testing.T) {
	t.Parallel()
	g := startGateway(t, func(c *gateway.Config) { c.HandshakeTimeout = time.Second })
	b := dialBiz(t, g)
	b.mustRegister(2)
	ws := dialWS(t, g) // upgraded before the half-sent one connects

	conn, err := net.DialTimeout("tcp", g.ClientAddr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /netsvr HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a half-sent handshake is still open after %s (read %d bytes, %v)", ioTimeout, n, err)
	}
	ws.sendText("~3yPvmnz~")
	if op, p := ws.readMessage(); op != opText || string(p) != "~u38NvZ~" {
		t.Fatalf("the upgraded client after the handshake timeout: op %d %q", op, p)
	}
}

// TestSlowUpgradeKeepsTheClient: the handshake timeout bounds the client's
// request, not the server's work — a server that takes longer than it to
// upgrade a complete request (here 1.5 s against 1 s) still upgrades the
// client, which then stays open.
func TestSlowUpgradeKeepsTheClient(t *testing.T) {
	t.Parallel()
	const handshake = time.Second
	g := newGateway(t, func(c *gateway.Config) { c.HandshakeTimeout = handshake }, nil)
	gateway.DelayUpgrade(g, 3*handshake/2)
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	b := dialBiz(t, g)
	b.mustRegister(2)
	ws := dialWS(t, g)
	ws.sendText("~3yPvmnz~")
	if op, p := ws.readMessage(); op != opText || string(p) != "~u38NvZ~" {
		t.Fatalf("the client upgraded after the handshake timeout: op %d %q", op, p)
	}
}

// TestMalformedQueryIsNotRefused: a query netsvr reads with r.URL.Query()
// — which skips a pair it cannot parse (a ";", a bad %-escape) — is not a
// reason to refuse the upgrade here either, and a custom uniqId next to
// such a pair still counts.
func TestMalformedQueryIsNotRefused(t *testing.T) {
	t.Parallel()
	g := startGateway(t, withConnWorkers)
	b := dialBiz(t, g)
	b.mustRegister(1)
	for _, q := range []string{"a=1;b=2", "x=%zz", "x=%FF"} {
		if c, status := dialWSStatus(t, g, wsOpts{query: q}); c == nil {
			t.Errorf("query %q: HTTP %d, want an upgrade", q, status)
		}
		if open := b.connOpen(); open.RawQuery != q {
			t.Errorf("ConnOpen raw query %q, want %q", open.RawQuery, q)
		}
	}
	tok := &netsvr.ConnOpenCustomUniqIdTokenResp{}
	b.call(netsvr.Cmd_ConnOpenCustomUniqIdToken, nil, tok)
	if c, status := dialWSStatus(t, g, wsOpts{query: "x=%zz&uniqId=player-9&token=" + tok.Token}); c == nil {
		t.Fatalf("custom uniqId next to a malformed pair: HTTP %d", status)
	}
	if open := b.connOpen(); open.UniqId != "player-9" {
		t.Errorf("ConnOpen uniqId %q, want player-9", open.UniqId)
	}
}
