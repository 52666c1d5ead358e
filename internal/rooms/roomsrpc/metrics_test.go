package roomsrpc_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestMetrics drives each thing the rooms metrics count and reads them
// from the registry; every metric is documented in docs/observability.md.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	stopped := time.Now() // the chat bucket never refills
	e := newEnv(t, func(c *rooms.Config) {
		c.Registerer = reg
		c.Now = func() time.Time { return stopped }
		c.ChatPerSecond = 2
		c.LoginThrottle = ratelimit.LoginConfig{UserFree: 2}
	})
	ctx := ctxT(t)
	owner, bob := e.register("owner"), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.join(bob, room)
	e.withMovie(owner, room)

	if _, err := e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "owner", Password: "password-owner"})); err != nil {
		t.Fatal(err)
	}
	for range 3 { // two failures, then throttled
		_, err := e.c.Login(ctx, connect.NewRequest(&clientv1.LoginRequest{Username: "nobody", Password: "wrong"}))
		if err == nil {
			t.Fatal("login with a wrong password succeeded")
		}
	}

	so, sb := e.openStream(owner, room, 0), e.openStream(bob, room, 0)
	so.next(isReady)
	sb.next(isReady)
	for range 3 { // the third is over the limit of 2
		sb.send(chatMsg("hi"))
	}
	if got := sb.next(isError).GetError().GetCode(); got != apierr.CodeRateLimited {
		t.Fatalf("third chat: %s", got)
	}
	seek, err := e.c.Seek(ctx, as(owner, &clientv1.SeekRequest{RoomId: room, Position: 3}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Seek(ctx, as(owner, &clientv1.SeekRequest{RoomId: room, Position: 4, Version: seek.Msg.GetState().GetVersion() - 1}))
	wantCode(t, err, connect.CodeAborted, apierr.CodePlaybackVersion)
	so.next(func(m *clientv1.ServerMessage) bool {
		return isState(m) && m.GetRoomState().GetState().GetVersion() == seek.Msg.GetState().GetVersion()
	})

	got := gather(t, reg)
	for series, want := range map[string]float64{
		"croupier_rooms_streams":                             2,
		"croupier_rooms_live":                                1,
		`croupier_rooms_logins_total{result="ok"}`:           1,
		`croupier_rooms_logins_total{result="invalid"}`:      2,
		`croupier_rooms_logins_total{result="throttled"}`:    1,
		`croupier_rooms_rate_limited_total{limit="chat"}`:    1,
		`croupier_rooms_rate_limited_total{limit="danmaku"}`: 0,
		`croupier_rooms_events_total{kind="chat"}`:           2,
		`croupier_rooms_playback_conflicts_total`:            1,
		`croupier_rooms_slow_consumers_total`:                0,
		`croupier_rooms_events_total{kind="live"}`:           0,
		`croupier_rooms_events_total{kind="playlist"}`:       0, // the room was not live when the movie was added
		`croupier_rooms_events_total{kind="member"}`:         2, // owner and bob ONLINE
		`croupier_rooms_events_total{kind="room_state"}`:     2, // SetCurrentMovie and the seek
		`croupier_rooms_events_total{kind="room"}`:           0,
		`croupier_rooms_events_total{kind="danmaku"}`:        0,
		`croupier_rooms_deliveries_total`:                    0 + 1 + 2*2 + 2, // ONLINEs (to the streams open before), chats, seek
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (exported: %v), want %v", series, v, ok, want)
		}
	}

	doc, err := os.ReadFile("../../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	for series := range got {
		name, _, _ := strings.Cut(series, "{")
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("metric %s is not documented in docs/observability.md", name)
		}
	}
}

// gather returns every series of reg as name{label="value",...} → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			if len(m.GetLabel()) > 0 {
				var l []string
				for _, p := range m.GetLabel() {
					l = append(l, p.GetName()+`="`+p.GetValue()+`"`)
				}
				key += "{" + strings.Join(l, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
