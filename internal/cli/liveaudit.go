package cli

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/live"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// liveAuditor records live.AuditEvents as audit rows: actor
// "rtmp:<remote host>", action "live.<event>" ("live.publish_refused",
// "live.publish_cut_off", "live.stream_stopped"), the room, stream, remote
// address and reason as payload, PERMISSION_DENIED as the result of a
// refusal or a cut-off. Anyone who reaches the RTMP port can try a key, so
// lim (audit.NewRefusalLimiter) bounds the rows of refusals and stops;
// internal/live logs every event at WARN, so none beyond the limit is lost
// from the log. Cut-offs are not limited. A nil rec records nothing.
func liveAuditor(rec audit.Recorder, lim *rate.Limiter, log *slog.Logger) func(live.AuditEvent) {
	if rec == nil {
		return nil
	}
	return func(ev live.AuditEvent) {
		// A cut-off follows a member's own change (a rotation, a ban), at
		// most one per stream, so it is always recorded; anyone can cause
		// refusals, so those are limited.
		if ev.Action != live.ActionPublishCutOff && !lim.Allow() {
			return
		}
		host := ev.Remote
		if h, _, err := net.SplitHostPort(ev.Remote); err == nil {
			host = h
		}
		e := audit.Entry{
			Actor:  "rtmp:" + host,
			Action: "live." + strings.ReplaceAll(ev.Action, " ", "_"),
			Payload: map[string]string{"room_id": ev.RoomID, "stream": ev.Stream, "remote": ev.Remote,
				"reason": ev.Reason},
		}
		if ev.Action == live.ActionPublishRefused || ev.Action == live.ActionPublishCutOff {
			e.Err = status.Error(codes.PermissionDenied, ev.Reason)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rec.Record(ctx, e); err != nil {
			log.Error("live: audit row not written", "action", e.Action, "room", ev.RoomID, "err", err)
		}
	}
}
