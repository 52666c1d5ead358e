package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// TestAuditVerifyDetectsTampering writes a real chain with internal/audit,
// edits or deletes rows behind its back with SQL, and checks that Verify
// passes before and names the right row after.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	auditor := principal.Principal{Kind: principal.Operator, Name: "aud", Grants: rbac.AdminGrants()}
	cases := []struct {
		name    string
		sql     string
		wantID  int64
		wantMsg string
	}{
		{"edit payload", `UPDATE audit_log SET payload = '{"amount":1}' WHERE id = 3`, 3, "row 3 was altered"},
		{"edit actor", `UPDATE audit_log SET actor = 'operator:mallory' WHERE id = 5`, 5, "row 5 was altered"},
		{"edit result", `UPDATE audit_log SET result = 'INTERNAL' WHERE id = 1`, 1, "row 1 was altered"},
		{"delete middle", `DELETE FROM audit_log WHERE id = 4`, 4, "row 4 is missing"},
		{"delete first", `DELETE FROM audit_log WHERE id = 1`, 1, "row 1 is missing"},
		{"delete tail", `DELETE FROM audit_log WHERE id >= 5`, 5, "rows 5 to 6 are missing"},
		{"relink after delete", `DELETE FROM audit_log WHERE id = 2; UPDATE audit_log SET id = 2 WHERE id = 3`, 2, "row 2 was altered"},
		{"forge hash of edited row", `UPDATE audit_log SET payload = '{}', hash = 'ff' WHERE id = 2`, 2, "row 2 was altered"},
		{"rewrite prev link", `UPDATE audit_log SET prev_hash = 'ff' WHERE id = 6`, 6, "row 6 was altered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T, s *store.Store) {
				ctx := ctxT(t)
				l, err := audit.New(audit.Config{Store: s, VerifyBatch: 2})
				mustNil(t, err, "audit.New")
				for i := range 6 {
					mustNil(t, l.Record(ctx, audit.Entry{Actor: "operator:bob", Action: audit.ActionInvoke, Game: "g", Env: "prod",
						Function: "economy.give", Payload: map[string]int{"amount": 100 * (i + 1)}}), "record")
				}
				res, err := l.Verify(ctx, auditor)
				mustNil(t, err, "verify intact")
				if !res.OK || res.RowsChecked != 6 {
					t.Fatalf("intact chain: %+v", res)
				}
				for _, stmt := range strings.Split(tc.sql, ";") {
					_, err := store.DBOf(s).ExecContext(ctx, stmt)
					mustNil(t, err, "tamper: "+stmt)
				}
				res, err = l.Verify(ctx, auditor)
				mustNil(t, err, "verify tampered")
				if res.OK || res.FirstBadID != tc.wantID || !strings.Contains(res.Reason, tc.wantMsg) {
					t.Fatalf("after %q: %+v, want first bad id %d with %q", tc.sql, res, tc.wantID, tc.wantMsg)
				}
			})
		})
	}
}

// TestAuditVerifyDetectsHeadRewrite: an attacker who deletes the tail and
// winds the head back must also recompute the head's hash; winding back only
// the id leaves a mismatch at the new last row.
func TestAuditVerifyDetectsHeadRewrite(t *testing.T) {
	t.Parallel()
	auditor := principal.Principal{Kind: principal.Operator, Name: "aud", Grants: rbac.AdminGrants()}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		l, err := audit.New(audit.Config{Store: s})
		mustNil(t, err, "audit.New")
		for i := range 3 {
			mustNil(t, l.Record(ctx, audit.Entry{Action: fmt.Sprint("a", i)}), "record")
		}
		for _, stmt := range []string{`DELETE FROM audit_log WHERE id = 3`, `UPDATE audit_head SET last_id = 2 WHERE k = 1`} {
			_, err := store.DBOf(s).ExecContext(ctx, stmt)
			mustNil(t, err, "tamper")
		}
		res, err := l.Verify(ctx, auditor)
		mustNil(t, err, "verify")
		if res.OK || res.FirstBadID != 2 || !strings.Contains(res.Reason, "differs from the chain head") {
			t.Fatalf("after truncating and rewinding the head id: %+v", res)
		}
	})
}
