package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv1 "github.com/croupier/croupier/api/synctv/cluster/v1"
	datav1 "github.com/croupier/croupier/api/synctv/data/v1"
	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// TestDev runs `croupier dev` as a newcomer would and drives it with the
// CLI through the profile it writes.
func TestDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	dir := t.TempDir()
	p := start(t, "dev", bins.croupier, "dev", "--data-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--tunnel-http-addr", "127.0.0.1:0", "--sdk-addr", "127.0.0.1:0", "--gse-addr", "127.0.0.1:0",
		"--gateway-addr", "127.0.0.1:0", "--gateway-business-addr", "127.0.0.1:0", "--rooms-addr", "127.0.0.1:0",
		"--rtmp-addr", "127.0.0.1:0", "--cluster-addr", "127.0.0.1:0")
	p.waitLine("Croupier dev is running.", 60*time.Second)
	p.waitLine("Press Ctrl-C to stop.", 10*time.Second)

	// The rooms system with its demo room, over Connect's JSON protocol.
	rooms := regexp.MustCompile(`rooms\s+(http://\S+)\s+\(ClientService; demo room (\S+),`).FindStringSubmatch(p.output())
	if rooms == nil {
		t.Fatalf("dev printed no rooms address:\n%s", p.output())
	}
	lr, err := http.Post(rooms[1]+"/synctv.client.ClientService/ListRooms", "application/json", strings.NewReader(`{"search":"demo"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(lr.Body)
	lr.Body.Close()
	if lr.StatusCode != http.StatusOK || !strings.Contains(string(body), `"id":"`+rooms[2]+`"`) || !strings.Contains(string(body), `"allowGuests":true`) {
		t.Fatalf("ListRooms: %d %s", lr.StatusCode, body)
	}

	// The watch page, the demo room's video and the gateway's metrics on the
	// same listener.
	for path, want := range map[string]string{"/watch/": `<video id="video"`, "/watch/media/demo.mp4": "ftyp",
		"/metrics": `croupier_rooms_logins_total{result="ok"} 0`} {
		resp, err := http.Get(rooms[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Fatalf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	if !strings.Contains(p.output(), "watch page    "+rooms[1]+"/watch/#/room/"+rooms[2]) {
		t.Fatalf("dev printed no watch page link:\n%s", p.output())
	}
	devTier(t, p.output(), dir, rooms[2])
	devLive(t, p.output(), rooms[1], rooms[2])

	// The player gateway with the demo chat: a client joins the lobby on
	// connect, and what it sends to workerId 001 reaches every lobby member.
	ws := regexp.MustCompile(`ws://(\S+)(/netsvr)`).FindStringSubmatch(p.output())
	if ws == nil {
		t.Fatalf("dev printed no gateway address:\n%s", p.output())
	}
	alice, carol := dialWS(t, ws[1], ws[2]), dialWS(t, ws[1], ws[2])
	for _, c := range []*wsConn{alice, carol} {
		if got := c.read(); !strings.HasPrefix(got, "welcome to the lobby, ") {
			t.Fatalf("first message %q, want the lobby welcome", got)
		}
	}
	alice.send(`001{"say":"hi"}`)
	for _, c := range []*wsConn{alice, carol} {
		if got := c.read(); !strings.HasSuffix(got, `: {"say":"hi"}`) {
			t.Fatalf("chat message %q, want the lobby echo of alice's", got)
		}
	}

	env := []string{"CROUPIER_PROFILE=" + filepath.Join(dir, "client.yaml")}
	devLiveRefused(t, env, p.output(), rooms[2])
	devTierRevoked(t, env, p.output(), dir)

	out, code := run(t, env, "registry", "list")
	for _, fn := range []string{"player.get", "player.ban", "player.grant_item", "mail.broadcast"} {
		if code != 0 || !strings.Contains(out, fn) {
			t.Fatalf("registry list lacks %s (exit %d):\n%s", fn, code, out)
		}
	}
	if !strings.Contains(out, "HIGH") {
		t.Fatalf("player.ban is not shown high-risk:\n%s", out)
	}
	// The demo fleet runs gsegame from dev's copy in the agent's build
	// directory (the agent launches nothing else).
	out, _ = run(t, env, "fleet", "list", "--game", "demo", "--env", "dev", "-o", "json")
	fid := regexp.MustCompile(`"fleet_?[iI]d":\s*"([^"]+)"`).FindStringSubmatch(out)
	if fid == nil || !strings.Contains(out, filepath.Join(dir, "builds", "demo", "gsegame")) {
		t.Fatalf("demo fleet does not launch DATA_DIR/builds/demo/gsegame:\n%s", out)
	}
	waitFor(t, 30*time.Second, "two ACTIVE demo fleet processes", func() bool {
		out, code := run(t, env, "fleet", "processes", fid[1], "--status", "ACTIVE", "-o", "json")
		return code == 0 && len(regexp.MustCompile(`"process_?[iI]d"`).FindAllString(out, -1)) == 2
	})
	out, code = run(t, env, "invoke", "player.get", "--game", "demo", "--env", "dev", "--payload", `{"player_id":"p100"}`, "-o", "json")
	var resp struct {
		Success bool `json:"success"`
		Result  struct {
			Player struct {
				ID string `json:"player_id"`
			} `json:"player"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &resp); code != 0 || err != nil || !resp.Success || resp.Result.Player.ID != "p100" {
		t.Fatalf("invoke player.get p100: exit %d\n%s", code, out)
	}
	out, code = run(t, env, "invoke", "player.get", "--game", "demo", "--env", "dev", "--payload", `{"player_id":"p101"}`)
	if code != 1 || !strings.Contains(out, "PLAYER_NOT_FOUND") {
		t.Fatalf("invoke player.get p101: exit %d\n%s", code, out)
	}
	// The gateway's built-in functions are served through dev's agent.
	waitFor(t, 30*time.Second, "gateway.stats to count the two chat clients", func() bool {
		out, code := run(t, env, "invoke", "gateway.stats", "--game", "demo", "--env", "dev", "-o", "json")
		return code == 0 && regexp.MustCompile(`"online":\s*2\b`).MatchString(out)
	})
	// player.ban is high-risk: it waits for a second operator.
	out, code = run(t, env, "invoke", "player.ban", "--game", "demo", "--env", "dev", "--payload", `{"player_id":"p5","reason":"botting","duration_seconds":3600}`)
	m := regexp.MustCompile(`approval (apr_[a-z0-9]+)`).FindStringSubmatch(out)
	if code != 1 || !strings.Contains(out, "APPROVAL_REQUIRED") || m == nil {
		t.Fatalf("invoke player.ban: exit %d\n%s", code, out)
	}
	if out, code := runIn(t, env, "bob-secret-pw\n", "user", "add", "bob", "--password-stdin"); code != 0 {
		t.Fatalf("user add: %s", out)
	}
	if out, code := run(t, env, "role", "grant", "bob", "approver", "--scope", "game:demo/*"); code != 0 {
		t.Fatalf("role grant: %s", out)
	}
	if out, code := run(t, env, "approvals", "approve", m[1]); code == 0 || !strings.Contains(out, "SELF_APPROVAL") {
		t.Fatalf("self-approval: exit %d\n%s", code, out)
	}
	bobProfile := filepath.Join(dir, "bob.yaml")
	writeFile(t, bobProfile, "address: "+profileAddress(t, filepath.Join(dir, "client.yaml"))+"\nca: certs/ca.crt\nserver_name: localhost\n")
	bob := []string{"CROUPIER_PROFILE=" + bobProfile}
	if out, code := runIn(t, bob, "bob-secret-pw\n", "login", "-u", "bob", "--password-stdin"); code != 0 {
		t.Fatalf("bob login: %s", out)
	}
	out, code = run(t, bob, "approvals", "approve", m[1])
	job := regexp.MustCompile(`job (job_[a-z0-9]+)`).FindStringSubmatch(out)
	if code != 0 || job == nil {
		t.Fatalf("bob approves: exit %d\n%s", code, out)
	}
	out, code = run(t, env, "job", "watch", job[1])
	if code != 0 || !strings.Contains(out, `"banned":true`) {
		t.Fatalf("approved ban job: exit %d\n%s", code, out)
	}
	out, code = run(t, env, "job", "start", "mail.broadcast", "--game", "demo", "--env", "dev", "-w",
		"--payload", `{"subject":"hi","body":"welcome","recipients":["*"]}`)
	if code != 0 || !strings.Contains(out, "DONE") || !strings.Contains(out, `"sent":100`) {
		t.Fatalf("job start -w: exit %d\n%s", code, out)
	}

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(15 * time.Second); code != 0 {
		t.Fatalf("croupier dev exited %d after SIGTERM", code)
	}
}

// devTier checks that dev's rooms run on the gateway tier: its
// ClusterService (mTLS, the dev CA's client certificate) lists the one
// node at the printed address, and a playback change made through its
// DataSyncService comes back from the room log on SyncEvents.
func devTier(t *testing.T, out, dir, room string) {
	t.Helper()
	m := regexp.MustCompile(`cluster gRPC\s+(\S+)\s+\(ClusterService, DataSyncService; mTLS`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev printed no cluster address:\n%s", out)
	}
	certs := filepath.Join(dir, "certs")
	conn := certConn(t, certs, "client", m[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := clusterv1.NewClusterServiceClient(conn).GetNodes(ctx, &clusterv1.GetNodesRequest{OnlyAlive: true})
	if err != nil || len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetAddress() != m[1] {
		t.Fatalf("GetNodes: %v %v, want the one dev node at %s", nodes, err, m[1])
	}
	// The agent's certificate is the same CA's, but an agent is scoped to
	// one game: it must not act with every room's authority.
	if _, err := datav1.NewDataSyncServiceClient(certConn(t, certs, "agent", m[1])).SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room,
		State: &datav1.RoomState{Status: "playing", CurrentTime: 7, Rate: 1}, SourceNodeId: "agent"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("SyncRoomState with the agent's certificate: %v, want the handshake refused (UNAVAILABLE)", err)
	}
	sync, err := clusterv1.NewClusterServiceClient(conn).SyncEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sync.Header(); err != nil { // the log is followed from here on
		t.Fatal(err)
	}
	if _, err := datav1.NewDataSyncServiceClient(conn).SyncRoomState(ctx, &datav1.SyncRoomStateRequest{RoomId: room,
		State: &datav1.RoomState{Status: "paused", CurrentTime: 42, Rate: 1}, SourceNodeId: "e2e"}); err != nil {
		t.Fatalf("SyncRoomState: %v", err)
	}
	for {
		ev, err := sync.Recv() // bounded by ctx
		if err != nil {
			t.Fatalf("SyncEvents: no playback event of room %s: %v", room, err)
		}
		if pb := ev.GetPlayback(); pb.GetRoomId() == room && ev.GetSeq() > 0 && strings.Contains(string(pb.GetData()), `"position":42`) {
			return
		}
	}
}

// devTierRevoked checks that the cluster listener refuses a node
// certificate once `croupier certs revoke` put it on the server's list: a
// second certificate named as dev's node peer is admitted, then revoked;
// the SyncEvents stream it opened is cut, the connection it made is refused
// its next call (CERTIFICATE_REVOKED) and a new one the handshake.
func devTierRevoked(t *testing.T, env []string, out, dir string) {
	t.Helper()
	m := regexp.MustCompile(`cluster gRPC\s+(\S+)\s+\(ClusterService`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev printed no cluster address:\n%s", out)
	}
	certs := filepath.Join(dir, "certs")
	if out, code := run(t, env, "certs", "issue", "client", "--name", "operator", "--ca-dir", certs, "--out", filepath.Join(certs, "node2")); code != 0 {
		t.Fatalf("certs issue: exit %d\n%s", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := clusterv1.NewClusterServiceClient(certConn(t, certs, "node2", m[1]))
	if _, err := cs.GetNodes(ctx, &clusterv1.GetNodesRequest{}); err != nil {
		t.Fatalf("GetNodes with a second node certificate: %v", err)
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	sync, err := cs.SyncEvents(syncCtx) // open when the certificate is revoked
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sync.Header(); err != nil {
		t.Fatalf("SyncEvents with a second node certificate: %v", err)
	}
	if out, code := run(t, env, "certs", "revoke", filepath.Join(certs, "node2.crt"), "--reason", "e2e"); code != 0 {
		t.Fatalf("certs revoke: exit %d\n%s", code, out)
	}
	// dev checks the server's own list, so the stream was cut before the
	// revocation answered; 3 s for the news to arrive, well below the
	// server's 10 s reload.
	time.AfterFunc(3*time.Second, stopSync)
	for { // events already queued may come first; the stream ends with the revocation
		if _, err = sync.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("SyncEvents opened before the revocation: %v, want it cut UNAUTHENTICATED (revoked)", err)
	}
	if _, err := cs.GetNodes(ctx, &clusterv1.GetNodesRequest{}); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("GetNodes on the revoked certificate's connection: %v, want UNAUTHENTICATED (revoked)", err)
	}
	if _, err := clusterv1.NewClusterServiceClient(certConn(t, certs, "node2", m[1])).GetNodes(ctx, &clusterv1.GetNodesRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetNodes on a new connection with the revoked certificate: %v, want the handshake refused (UNAVAILABLE)", err)
	}
}

// profileAddress reads the address line of a profile file.
func profileAddress(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^address: (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no address in %s", path)
	}
	return m[1]
}

// devLive streams into the demo room with the ingest URL dev printed, as
// the README says, and plays it as a guest of the room (docs/live.md).
func devLive(t *testing.T, out, base, room string) {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Log("ffmpeg not installed; the live part of TestDev is skipped (.ci/run installs it)")
		return
	}
	ingest := regexp.MustCompile(`live ingest\s+(rtmp://\S+/` + regexp.QuoteMeta(room) + `/main\.\S+)`).FindStringSubmatch(out)
	if ingest == nil {
		t.Fatalf("dev printed no live ingest URL for the demo room:\n%s", out)
	}
	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine", "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-f", "flv", ingest[1])
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Process.Kill(); _ = pub.Wait() })
	resp, err := http.Post(base+"/synctv.client.ClientService/GuestJoin", "application/json",
		strings.NewReader(`{"roomId":"`+room+`","name":"viewer"}`))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		AccessToken string `json:"accessToken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&g)
	resp.Body.Close()
	if err != nil || g.AccessToken == "" {
		t.Fatalf("GuestJoin: %d %v", resp.StatusCode, err)
	}
	url := base + "/live/" + room + "/main.flv?token=" + g.AccessToken
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("ffprobe", "-v", "error", "-probesize", "200000", "-analyzeduration", "2000000",
			"-show_entries", "stream=codec_name", "-of", "csv=p=0", url).Output()
		if err == nil && strings.Contains(string(out), "h264") && strings.Contains(string(out), "aac") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ffprobe %s: %v %q", url, err, out)
		}
		time.Sleep(200 * time.Millisecond) // polling until the publisher is live, bounded by deadline
	}
}

// devLiveRefused publishes with a wrong stream key: the gateway refuses it
// at publish and the refusal is a row of the operators' audit trail
// (docs/live.md).
func devLiveRefused(t *testing.T, env []string, out, room string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return // devLive says why
	}
	ingest := regexp.MustCompile(`live ingest\s+(rtmp://\S+/` + regexp.QuoteMeta(room) + `/)main\.\S+`).FindStringSubmatch(out)
	if ingest == nil {
		t.Fatalf("dev printed no live ingest URL for the demo room:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=5",
		"-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", ingest[1]+"main.not-the-key")
	if msg, err := bad.CombinedOutput(); err == nil {
		t.Fatalf("ffmpeg published with a wrong stream key: %s", msg)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, code := run(t, env, "audit", "list", "--action", "live.publish_refused", "-o", "json")
		if code == 0 && strings.Contains(rows, room) && strings.Contains(rows, "PERMISSION_DENIED") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live.publish_refused audit row for room %s (exit %d):\n%s", room, code, rows)
		}
		time.Sleep(200 * time.Millisecond) // the row is written after the refusal; bounded by deadline
	}
}

// certConn dials addr with mTLS as the certificate NAME.crt of the
// `croupier certs init` directory certs (closed when the test ends).
func certConn(t *testing.T, certs, name, addr string) *grpc.ClientConn {
	t.Helper()
	tc, err := tlsconf.ClientConfig(filepath.Join(certs, "ca.crt"), filepath.Join(certs, name+".crt"), filepath.Join(certs, name+".key"), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
