package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newLog(t *testing.T, s *store.Store, batch int) *audit.Log {
	t.Helper()
	l, err := audit.New(audit.Config{Store: s, VerifyBatch: batch, MaxPayloadBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	auditor = principal.Principal{Kind: principal.Operator, Name: "aud",
		Grants: []principal.Grant{rbac.Grant(rbac.AuditorRole, "*", []string{rbac.AuditRead})}}
	gameAuditor = principal.Principal{Kind: principal.Operator, Name: "ga",
		Grants: []principal.Grant{rbac.Grant(rbac.AuditorRole, "game:a/*", []string{rbac.AuditRead})}}
	viewer = principal.Principal{Kind: principal.Operator, Name: "v",
		Grants: []principal.Grant{rbac.Grant(rbac.ViewerRole, "*", []string{rbac.JobRead})}}
)

func TestRecordMasksAndClassifies(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	l := newLog(t, s, 0)
	ctx := ctxT(t)
	pl, _ := structpb.NewStruct(map[string]any{"player": "p1", "reason": "cheating"})
	rec, err := l.Append(ctx, audit.Entry{Actor: "operator:bob", Action: audit.ActionInvoke, Game: "a", Env: "prod",
		Function: "player.ban", Payload: pl, SensitiveFields: []string{"/reason"},
		Err: status.Error(codes.PermissionDenied, "no"), Duration: 1500 * time.Millisecond, RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(rec.Payload), &got); err != nil || got["reason"] != "***" || got["player"] != "p1" {
		t.Fatalf("payload %s: sensitive field not masked", rec.Payload)
	}
	if rec.Result != "PERMISSION_DENIED" || rec.DurationMs != 1500 || rec.RequestID != "req-1" || rec.ID != 1 || rec.Time.IsZero() {
		t.Fatalf("record = %+v", rec)
	}

	// Payload forms: nil, raw JSON, invalid JSON, oversized, Go values.
	for _, tc := range []struct {
		payload any
		want    string
	}{
		{nil, `{}`},
		{json.RawMessage(`{"x":[1,2]}`), `{"x":[1,2]}`},
		{[]byte(`{not json`), `{"_invalid_json":true}`},
		{map[string]string{"username": "bob"}, `{"username":"bob"}`},
		{json.RawMessage(`"` + strings.Repeat("x", 300) + `"`), `{"_bytes":302,"_truncated":true,"value":"` + strings.Repeat("x", 64) + `…(+236 bytes)"}`},
	} {
		rec, err := l.Append(ctx, audit.Entry{Action: "test", Payload: tc.payload})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Payload != tc.want {
			t.Errorf("payload %v stored as %s, want %s", tc.payload, rec.Payload, tc.want)
		}
	}

	// A caller that already hung up is still recorded.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Record(cctx, audit.Entry{Action: audit.ActionInvoke, Err: context.Canceled}); err != nil {
		t.Fatalf("record with a cancelled context: %v", err)
	}
	rows, _, err := l.List(ctx, auditor, audit.Filter{PageSize: 1})
	if err != nil || len(rows) != 1 || rows[0].Result != "CANCELLED" {
		t.Fatalf("last row = %+v, %v", rows, err)
	}
}

func TestResultOf(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		nil:                                     "OK",
		status.Error(codes.NotFound, "x"):       "NOT_FOUND",
		context.DeadlineExceeded:                "DEADLINE_EXCEEDED",
		status.Error(codes.Unauthenticated, ""): "UNAUTHENTICATED",
		json.Unmarshal([]byte("x"), new(int)):   "INTERNAL",
		status.Error(codes.Unknown, "x"):        "INTERNAL",
	} {
		if got := audit.ResultOf(err); got != want {
			t.Errorf("ResultOf(%v) = %s, want %s", err, got, want)
		}
	}
}

func TestListAuthorization(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	l := newLog(t, s, 0)
	ctx := ctxT(t)
	for _, g := range []string{"a", "b", "a", ""} {
		if err := l.Record(ctx, audit.Entry{Actor: "operator:x", Action: audit.ActionInvoke, Game: g, Env: "prod"}); err != nil {
			t.Fatal(err)
		}
	}
	rows, _, err := l.List(ctx, gameAuditor, audit.Filter{Game: "a"})
	if err != nil || len(rows) != 2 {
		t.Fatalf("game auditor on its game: %d rows, %v", len(rows), err)
	}
	_, _, err = l.List(ctx, gameAuditor, audit.Filter{Game: "b"})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "permission audit:read denied on game:b") {
		t.Fatalf("game auditor on another game: %v", err)
	}
	_, _, err = l.List(ctx, gameAuditor, audit.Filter{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "denied on *") {
		t.Fatalf("game auditor without a game filter: %v", err)
	}
	_, _, err = l.List(ctx, viewer, audit.Filter{Game: "a"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer: %v", err)
	}
	rows, _, err = l.List(ctx, auditor, audit.Filter{})
	if err != nil || len(rows) != 4 {
		t.Fatalf("auditor: %d rows, %v", len(rows), err)
	}
	if _, err := l.Verify(ctx, gameAuditor); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("verify by a game auditor: %v", err)
	}
}

func TestVerifyAcrossBatches(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t)
	l := newLog(t, s, 3)
	ctx := ctxT(t)
	res, err := l.Verify(ctx, auditor)
	if err != nil || !res.OK || res.RowsChecked != 0 {
		t.Fatalf("empty log: %+v, %v", res, err)
	}
	for i := range 10 {
		if err := l.Record(ctx, audit.Entry{Actor: "operator:x", Action: audit.ActionLogin, Payload: map[string]int{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err = l.Verify(ctx, auditor)
	if err != nil || !res.OK || res.RowsChecked != 10 || res.FirstBadID != 0 {
		t.Fatalf("intact log: %+v, %v", res, err)
	}
}
