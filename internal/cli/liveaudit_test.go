package cli

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/live"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type recorded struct {
	mu   sync.Mutex
	rows []audit.Entry
}

func (r *recorded) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, e)
	return nil
}

// A refused publish becomes one PERMISSION_DENIED row naming the remote
// host, room and reason; a flood of refusals is capped by the limiter.
func TestLiveAuditor(t *testing.T) {
	rec := &recorded{}
	// No refill: exactly the burst is recorded, whatever the timing.
	fn := liveAuditor(rec, rate.NewLimiter(0, 3), slog.New(slog.DiscardHandler))
	fn(live.AuditEvent{Action: "publish refused", RoomID: "room12345678", Remote: "192.0.2.7:50000", Reason: "unknown or revoked stream key"})
	if len(rec.rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rec.rows))
	}
	e := rec.rows[0]
	if e.Actor != "rtmp:192.0.2.7" || e.Action != "live.publish_refused" || status.Code(e.Err) != codes.PermissionDenied {
		t.Fatalf("row %+v", e)
	}
	if p := e.Payload.(map[string]string); p["room_id"] != "room12345678" || p["reason"] != "unknown or revoked stream key" {
		t.Fatalf("payload %v", p)
	}
	fn(live.AuditEvent{Action: "stream stopped", RoomID: "room12345678", Stream: "main", Remote: "node-b", Reason: "StopStream"})
	if e := rec.rows[1]; e.Action != "live.stream_stopped" || e.Err != nil || e.Actor != "rtmp:node-b" {
		t.Fatalf("stop row %+v", e)
	}
	fn(live.AuditEvent{Action: "publish cut off", RoomID: "room12345678", Stream: "main", Remote: "192.0.2.7:50000", Reason: "unknown or revoked stream key"})
	if e := rec.rows[2]; e.Action != "live.publish_cut_off" || status.Code(e.Err) != codes.PermissionDenied {
		t.Fatalf("cut-off row %+v", e)
	}
	for range 100 {
		fn(live.AuditEvent{Action: "publish refused", Remote: "192.0.2.7:50001", Reason: "flood"})
	}
	if len(rec.rows) != 4 {
		t.Fatalf("%d rows after a flood, want the burst of 3 and the cut-off", len(rec.rows))
	}
	// Cut-offs are recorded whatever the refusals used up.
	fn(live.AuditEvent{Action: "publish cut off", RoomID: "room12345678", Stream: "main", Remote: "192.0.2.8:50000", Reason: "unknown or revoked stream key"})
	if len(rec.rows) != 5 || rec.rows[4].Action != "live.publish_cut_off" {
		t.Fatalf("rows after a cut-off past the limit: %d, last %+v; want the cut-off recorded", len(rec.rows), rec.rows[len(rec.rows)-1])
	}
	if liveAuditor(nil, rate.NewLimiter(1, 1), nil) != nil {
		t.Fatal("no recorder must mean no auditor")
	}
}
