package audit

import (
	"context"
	"fmt"

	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
)

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	OK          bool
	RowsChecked int64
	// FirstBadID is the first row found altered, or the first id found
	// missing; 0 when OK.
	FirstBadID int64
	Reason     string
}

// Verify recomputes the chain from the first row to the head as it was
// when Verify started (rows appended meanwhile are left for the next run)
// and reports the first row that was altered or removed:
//   - a missing id (ids are dense: Append assigns head+1) is a removed row;
//   - a row whose recomputed hash differs from its stored hash was altered
//     (its prev_hash is hashed too, so relinking a row is an alteration);
//   - a row whose prev_hash is not its predecessor's hash breaks the link;
//   - a log that ends before the head's id lost its tail.
//
// It needs audit:read on "*".
func (l *Log) Verify(ctx context.Context, p principal.Principal) (VerifyResult, error) {
	if err := rbac.Check(p, rbac.AuditRead, "", "", ""); err != nil {
		return VerifyResult{}, err
	}
	return l.verify(ctx)
}

func (l *Log) verify(ctx context.Context) (VerifyResult, error) {
	if err := l.Sync(ctx); err != nil {
		return VerifyResult{}, err
	}
	head, err := l.store.Audit().Head(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	var (
		res      VerifyResult
		prevID   int64
		prevHash string
	)
	bad := func(id int64, format string, args ...any) (VerifyResult, error) {
		res.FirstBadID, res.Reason = id, fmt.Sprintf(format, args...)
		return res, nil
	}
	for prevID < head.LastID {
		rows, err := l.store.Audit().Range(ctx, prevID, head.LastID, l.verifyBatch)
		if err != nil {
			return VerifyResult{}, err
		}
		if len(rows) == 0 {
			break
		}
		for i := range rows {
			r := &rows[i]
			switch {
			case r.ID != prevID+1:
				return bad(prevID+1, "row %d is missing: row %d is followed by row %d", prevID+1, prevID, r.ID)
			case Hash(r) != r.Hash:
				return bad(r.ID, "row %d was altered: its contents do not match its hash", r.ID)
			case r.PrevHash != prevHash:
				return bad(r.ID, "row %d does not link to row %d: its prev_hash differs from row %d's hash", r.ID, prevID, prevID)
			}
			prevID, prevHash = r.ID, r.Hash
			res.RowsChecked++
		}
	}
	if prevID != head.LastID {
		return bad(prevID+1, "rows %d to %d are missing: the log ends at row %d but the chain head is row %d", prevID+1, head.LastID, prevID, head.LastID)
	}
	if prevHash != head.LastHash {
		return bad(prevID, "row %d was altered: its hash differs from the chain head's", prevID)
	}
	res.OK = true
	return res, nil
}
