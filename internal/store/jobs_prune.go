package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// pruneJobsBatch bounds the jobs one DELETE removes; their events go with
// them, so a batch can be large in rows.
const pruneJobsBatch = 100

// Prune deletes finished jobs (completed, failed, canceled) that ended before
// olderThan, with their events, but always keeps the keepNewest most recently
// ended finished jobs regardless of age (keepNewest <= 0 keeps none). The
// keep-set is counted across all scopes. Running and pending jobs are never
// pruned. It deletes in batches, stops early when ctx ends, and returns how
// many jobs it deleted.
func (x *Jobs) Prune(ctx context.Context, olderThan time.Time, keepNewest int) (int64, error) {
	cutoff := olderThan.UnixMilli()
	// Everything strictly below the keepNewest-th newest finished job (by
	// ended_at, job_id) may go. Jobs finishing meanwhile only move that
	// boundary up, so a boundary read once keeps at least keepNewest.
	boundEnded, boundID := int64(1<<62), "" // no bound: above any real row
	if keepNewest > 0 {
		err := x.s.db.QueryRowContext(ctx,
			`SELECT ended_at, job_id FROM jobs WHERE status IN `+terminalStatusesSQL+`
			 ORDER BY ended_at DESC, job_id DESC LIMIT 1 OFFSET $1`, keepNewest-1).Scan(&boundEnded, &boundID)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil // keepNewest or fewer finished jobs exist
		}
		if err != nil {
			return 0, dbErr(ctx, "prune jobs", err)
		}
	}
	var total int64
	for {
		res, err := x.s.db.ExecContext(ctx,
			`DELETE FROM jobs WHERE job_id IN (
			   SELECT job_id FROM jobs
			   WHERE status IN `+terminalStatusesSQL+` AND ended_at < $1 AND (ended_at, job_id) < ($2, $3)
			   ORDER BY ended_at, job_id LIMIT $4)`,
			cutoff, boundEnded, boundID, pruneJobsBatch)
		if err != nil {
			return total, dbErr(ctx, "prune jobs", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, dbErr(ctx, "prune jobs", err)
		}
		total += n
		if n < pruneJobsBatch {
			return total, nil
		}
	}
}
