package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Job statuses. completed, failed and canceled are terminal.
const (
	JobPending   = "pending"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// terminalStatusesSQL lists the terminal statuses for IN (...) clauses;
// constants, never input.
const terminalStatusesSQL = `('completed', 'failed', 'canceled')`

// IsTerminal reports whether status is one a job never leaves.
func IsTerminal(status string) bool {
	return status == JobCompleted || status == JobFailed || status == JobCanceled
}

func validStatus(status string) bool {
	return status == JobPending || status == JobRunning || IsTerminal(status)
}

// Job is the stored state of an asynchronous invocation. Times have
// millisecond precision; the zero time means "not yet".
type Job struct {
	ID             string
	GameID         string
	Env            string
	FunctionID     string
	Status         string
	Instance       string // "agent_id/instance_id" once placed
	Payload        []byte // the request payload, JSON
	Actor          string
	IdempotencyKey string
	CreatedAt      time.Time
	StartedAt      time.Time
	EndedAt        time.Time
	UpdatedAt      time.Time
	Progress       float64
	Result         []byte // JSON
	Error          string
	ErrorCode      string
	// LastSeq is the highest event seq appended so far (0: none).
	LastSeq int64
	// Incarnation of the instance process that runs the job.
	Incarnation string
	// EventBytes is what the job's stored events weigh (EventCost each),
	// maintained by AppendEvents.
	EventBytes int64
}

// Jobs stores jobs and their ordered, durable event logs.
type Jobs struct{ s *Store }

const jobColumns = `job_id, game_id, env, function_id, status, instance, payload, actor, idempotency_key,
	created_at, started_at, ended_at, updated_at, progress, result, error_message, error_code, last_seq, incarnation, event_bytes`

// Create inserts j. An empty Status becomes pending, a zero CreatedAt the
// store clock; both are written back into j. ErrConflict if the id exists.
func (x *Jobs) Create(ctx context.Context, j *Job) error {
	if j == nil || j.ID == "" {
		return invalid("job needs an id")
	}
	if err := checkScope(j.GameID, j.Env); err != nil {
		return err
	}
	if j.FunctionID == "" {
		return invalid("job %q needs a function id", j.ID)
	}
	if j.Status == "" {
		j.Status = JobPending
	}
	if !validStatus(j.Status) {
		return invalid("job %q: unknown status %q", j.ID, j.Status)
	}
	now := x.s.nowMs()
	if j.CreatedAt.IsZero() {
		j.CreatedAt = msToTime(now)
	}
	j.UpdatedAt = msToTime(now)
	_, err := x.s.db.ExecContext(ctx,
		`INSERT INTO jobs (`+jobColumns+`)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		j.ID, j.GameID, j.Env, j.FunctionID, j.Status, j.Instance, j.Payload, j.Actor, j.IdempotencyKey,
		timeToMs(j.CreatedAt), timeToMs(j.StartedAt), timeToMs(j.EndedAt), now,
		j.Progress, j.Result, j.Error, j.ErrorCode, j.LastSeq, j.Incarnation, j.EventBytes)
	if err != nil {
		err = dbErr(ctx, "create job", err)
		if errors.Is(err, ErrConflict) {
			return conflict("job %q already exists", j.ID)
		}
		return err
	}
	return nil
}

// Get returns one job, or ErrNotFound.
func (x *Jobs) Get(ctx context.Context, id string) (*Job, error) {
	row := x.s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE job_id = $1`, id)
	j, err := scanJob(row)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound("job %q", id)
		}
		return nil, dbErr(ctx, "get job", err)
	}
	return j, nil
}

// JobField is extra columns UpdateStatus writes with the status change.
// Build them with SetInstance, SetStartedAt, SetEndedAt, SetProgress,
// SetResult and SetError.
type JobField struct {
	columns []string // from the constructors below only: never input
	values  []any
	// through is SkipThrough's seq (AppendEventsWithStatus only).
	through int64
}

func field(column string, value any) JobField {
	return JobField{columns: []string{column}, values: []any{value}}
}

// SetInstance records where the job runs.
func SetInstance(instance string) JobField { return field("instance", instance) }

// SetIncarnation records which process incarnation runs the job.
func SetIncarnation(incarnation string) JobField { return field("incarnation", incarnation) }

// SetStartedAt records when the handler started.
func SetStartedAt(t time.Time) JobField { return field("started_at", timeToMs(t)) }

// SetEndedAt records when the job reached a terminal status.
func SetEndedAt(t time.Time) JobField { return field("ended_at", timeToMs(t)) }

// SetProgress records the latest progress, 0.0–1.0.
func SetProgress(p float64) JobField { return field("progress", p) }

// SkipThrough has AppendEventsWithStatus move the job's LastSeq up to seq
// even where the events it stores end before: the events after them were
// acknowledged but not stored (the job is over its event budget).
func SkipThrough(seq int64) JobField { return JobField{through: seq} }

// SetResult records the handler's result document.
func SetResult(result []byte) JobField { return field("result", result) }

// SetError records why the job failed: a stable code and a message.
func SetError(code, message string) JobField {
	return JobField{columns: []string{"error_code", "error_message"}, values: []any{code, message}}
}

// UpdateStatus is a compare-and-set on the job's status: it sets the status
// to `to` and writes fields only if the current status is one of from (any
// non-terminal status when from is empty). It returns whether it applied; false with a nil
// error means the job exists but was in another status. ErrNotFound if the
// job does not exist. A job in a terminal status is only changed when from
// names that status explicitly.
func (x *Jobs) UpdateStatus(ctx context.Context, id string, from []string, to string, fields ...JobField) (bool, error) {
	for _, f := range fields {
		if f.through != 0 {
			return false, invalid("job %q: SkipThrough goes with AppendEventsWithStatus, not UpdateStatus", id)
		}
	}
	query, args, err := x.updateStatusSQL(id, from, to, fields)
	if err != nil {
		return false, err
	}
	res, err := x.s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return false, dbErr(ctx, "update job status", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, dbErr(ctx, "update job status", err)
	}
	if n > 0 {
		return true, nil
	}
	if _, err := x.LastSeq(ctx, id); err != nil { // distinguishes missing from mismatched
		return false, err
	}
	return false, nil
}

// updateStatusSQL builds UpdateStatus's compare-and-set statement.
func (x *Jobs) updateStatusSQL(id string, from []string, to string, fields []JobField) (string, []any, error) {
	if !validStatus(to) {
		return "", nil, invalid("job %q: unknown target status %q", id, to)
	}
	for _, f := range from {
		if !validStatus(f) {
			return "", nil, invalid("job %q: unknown status %q in from", id, f)
		}
	}
	sets := []string{"status = $2", "updated_at = $3"}
	args := []any{id, to, x.s.nowMs()}
	// A column set twice keeps the last value: PostgreSQL refuses two
	// assignments to one column ("multiple assignments to same column",
	// SQLSTATE 42601) where SQLite takes the last.
	argOf := map[string]int{}
	add := func(col string, v any) {
		if i, ok := argOf[col]; ok {
			args[i] = v
			return
		}
		args = append(args, v)
		argOf[col] = len(args) - 1
		sets = append(sets, col+" = $"+strconv.Itoa(len(args)))
	}
	for _, f := range fields {
		for i, col := range f.columns {
			add(col, f.values[i])
		}
	}
	where := "job_id = $1"
	if len(from) == 0 {
		// "any status" still protects terminal jobs from being reopened.
		where += " AND status NOT IN " + terminalStatusesSQL
	} else {
		ph := make([]string, 0, len(from))
		for _, f := range slices.Compact(slices.Sorted(slices.Values(from))) {
			args = append(args, f)
			ph = append(ph, "$"+strconv.Itoa(len(args)))
		}
		where += " AND status IN (" + strings.Join(ph, ", ") + ")"
	}
	return `UPDATE jobs SET ` + strings.Join(sets, ", ") + ` WHERE ` + where, args, nil
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(dest ...any) error }

func scanJob(r rowScanner) (*Job, error) {
	var j Job
	var created, started, ended, updated int64
	err := r.Scan(&j.ID, &j.GameID, &j.Env, &j.FunctionID, &j.Status, &j.Instance, &j.Payload, &j.Actor,
		&j.IdempotencyKey, &created, &started, &ended, &updated, &j.Progress, &j.Result, &j.Error,
		&j.ErrorCode, &j.LastSeq, &j.Incarnation, &j.EventBytes)
	if err != nil {
		return nil, err
	}
	j.CreatedAt, j.StartedAt, j.EndedAt, j.UpdatedAt = msToTime(created), msToTime(started), msToTime(ended), msToTime(updated)
	return &j, nil
}
