package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
)

// Event is one entry of a job's event log.
type Event struct {
	// Seq is assigned by the caller: 1, 2, 3, ... per job.
	Seq         int64
	Type        int32 // croupierv1.EventType
	Message     string
	Progress    float64
	TimestampMs int64
	Data        []byte // JSON document, stored as given; nil stays nil
}

const (
	// eventsPerInsert bounds the rows in one multi-row INSERT: 7 parameters
	// a row stays far below SQLite's 32766 and PostgreSQL's 65535 parameter
	// limits. Chosen by BenchmarkAppendEvents (see docs/storage.md).
	eventsPerInsert = 250
	// DefaultEventsLimit is what Events returns at most when limit <= 0.
	DefaultEventsLimit = 1000
	// MaxEventsLimit caps Events' limit.
	MaxEventsLimit = 10000
)

// AppendEvents stores a batch of events of one job in a single transaction:
// all of the batch is stored or none of it.
//
// Seq numbers come from the caller and must be >= 1. An event whose seq is
// already stored for the job — from an earlier batch or earlier in the same
// batch — is skipped: the first write of a seq wins and later ones are
// ignored without error, even if their content differs. That makes
// re-delivering a batch after a lost acknowledgement harmless. The store does
// not check for gaps; the caller numbers events without them.
//
// The job's LastSeq becomes the highest stored seq, and its EventBytes
// grows by the events' EventCost. ErrNotFound if the job does not exist
// (nothing is stored then).
func (x *Jobs) AppendEvents(ctx context.Context, jobID string, events []Event) error {
	return x.appendEvents(ctx, jobID, events, 0, nil)
}

// EventCost is what an event weighs in its job's EventBytes: its message
// and data, and 128 bytes for its row.
func EventCost(e Event) int64 { return int64(len(e.Message)+len(e.Data)) + 128 }

// AppendEventsWithStatus is AppendEvents and UpdateStatus(jobID, nil, to,
// fields...) in one transaction, so a crash leaves both or neither: never a
// stored START or terminal event on a job whose status says otherwise (the
// status change is skipped, without error, when the job is already
// terminal).
func (x *Jobs) AppendEventsWithStatus(ctx context.Context, jobID string, events []Event, to string, fields ...JobField) error {
	query, args, err := x.updateStatusSQL(jobID, nil, to, fields)
	if err != nil {
		return err
	}
	var through int64
	for _, f := range fields {
		through = max(through, f.through)
	}
	return x.appendEvents(ctx, jobID, events, through, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return dbErr(ctx, "update job status", err)
		}
		return nil
	})
}

// appendEvents stores events, moves LastSeq to their highest seq or
// through, whichever is higher, and runs then (when not nil) in the same
// transaction.
func (x *Jobs) appendEvents(ctx context.Context, jobID string, events []Event, through int64, then func(tx *sql.Tx) error) error {
	if jobID == "" {
		return invalid("append events: job id must not be empty")
	}
	if len(events) == 0 && then == nil {
		return nil
	}
	maxSeq := through
	for _, e := range events {
		if e.Seq < 1 {
			return invalid("append events to job %q: seq %d is not >= 1", jobID, e.Seq)
		}
		maxSeq = max(maxSeq, e.Seq)
	}
	return x.s.inTx(ctx, "append job events", func(tx *sql.Tx) error {
		// Updating the job first checks that it exists and, on PostgreSQL,
		// locks its row so concurrent batches of one job apply in turn.
		res, err := tx.ExecContext(ctx,
			`UPDATE jobs SET last_seq = CASE WHEN last_seq < $2 THEN $2 ELSE last_seq END WHERE job_id = $1`,
			jobID, maxSeq)
		if err != nil {
			return dbErr(ctx, "append job events", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbErr(ctx, "append job events", err)
		} else if n == 0 {
			return notFound("append events: job %q", jobID)
		}
		// EventBytes grows by the events inserted, not by those skipped as
		// already stored (a re-sent batch).
		var cost int64
		for chunk := range chunks(events, eventsPerInsert) {
			n, err := insertEvents(ctx, tx, x.s.anonParams, jobID, chunk)
			if err != nil {
				return dbErr(ctx, "append job events", err)
			}
			cost += n
		}
		if cost > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET event_bytes = event_bytes + $2 WHERE job_id = $1`, jobID, cost); err != nil {
				return dbErr(ctx, "append job events", err)
			}
		}
		if then != nil {
			return then(tx)
		}
		return nil
	})
}

// insertEvents inserts chunk's events that are not stored yet and returns
// the EventCost of those it inserted.
func insertEvents(ctx context.Context, tx *sql.Tx, anon bool, jobID string, chunk []Event) (int64, error) {
	rows, err := tx.QueryContext(ctx, insertEventsSQL(anon, len(chunk)), eventArgs(jobID, chunk)...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	costOf := make(map[int64]int64, len(chunk))
	for _, e := range chunk {
		costOf[e.Seq] = EventCost(e)
	}
	var cost int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return 0, err
		}
		cost += costOf[seq]
		delete(costOf, seq) // a seq twice in the chunk is inserted once
	}
	return cost, rows.Err()
}

// chunks yields consecutive sub-slices of at most n elements.
func chunks[T any](s []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// insertEventsSQL builds "INSERT ... VALUES ($1,...,$7),($8,...,$14),..."
// for n rows on PostgreSQL, and the same with anonymous "?" on SQLite (see
// Store.anonParams).
func insertEventsSQL(anon bool, n int) string {
	var b strings.Builder
	b.Grow(100 + n*56)
	b.WriteString(`INSERT INTO job_events (job_id, seq, event_type, message, progress, ts_ms, data) VALUES `)
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		for c := range eventColumns {
			if c == 0 {
				b.WriteByte('(')
			} else {
				b.WriteByte(',')
			}
			if anon {
				b.WriteByte('?')
			} else {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(p))
				p++
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(` ON CONFLICT (job_id, seq) DO NOTHING RETURNING seq`)
	return b.String()
}

// eventColumns is the number of job_events columns an INSERT binds.
const eventColumns = 7

func eventArgs(jobID string, events []Event) []any {
	args := make([]any, 0, eventColumns*len(events))
	for _, e := range events {
		args = append(args, jobID, e.Seq, int64(e.Type), e.Message, e.Progress, e.TimestampMs, e.Data)
	}
	return args
}

// Events returns the job's events with seq >= fromSeq in seq order, at most
// limit of them (DefaultEventsLimit when limit <= 0, capped at
// MaxEventsLimit). It does not check that the job exists: an unknown job has
// no events. Page on by calling again with the last seq + 1.
func (x *Jobs) Events(ctx context.Context, jobID string, fromSeq int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = DefaultEventsLimit
	}
	limit = min(limit, MaxEventsLimit)
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT seq, event_type, message, progress, ts_ms, data FROM job_events
		 WHERE job_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3`, jobID, fromSeq, limit)
	if err != nil {
		return nil, dbErr(ctx, "read job events", err)
	}
	defer rows.Close()
	out := make([]Event, 0, min(limit, 64))
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Seq, &e.Type, &e.Message, &e.Progress, &e.TimestampMs, &e.Data); err != nil {
			return nil, dbErr(ctx, "read job events", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "read job events", err)
	}
	return out, nil
}

// LastSeq returns the highest event seq stored for the job (0 if none), or
// ErrNotFound.
func (x *Jobs) LastSeq(ctx context.Context, jobID string) (int64, error) {
	var seq int64
	err := x.s.db.QueryRowContext(ctx, `SELECT last_seq FROM jobs WHERE job_id = $1`, jobID).Scan(&seq)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, notFound("job %q", jobID)
		}
		return 0, dbErr(ctx, "read job last seq", err)
	}
	return seq, nil
}
