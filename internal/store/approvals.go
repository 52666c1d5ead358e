package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
	ApprovalExecuted = "executed"
	// ApprovalFailed: approved, but the call could not be started.
	ApprovalFailed = "failed"
)

// Approval is a two-person approval request for one function call.
type Approval struct {
	ID        string
	Requester string
	Game      string
	Env       string
	Function  string
	// Payload is the JSON the call will run with, unmasked.
	Payload []byte
	// Options is the call's croupier.v1.InvokeOptions as JSON.
	Options []byte
	// SensitiveFields are JSON pointers masked whenever the request is shown.
	SensitiveFields []string
	Status          string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	DecidedBy       string
	DecidedAt       time.Time
	// Reason is the approver's comment or the rejection reason.
	Reason string
	JobID  string
	// Error says why an approved call could not be started.
	Error     string
	UpdatedAt time.Time
}

// ApprovalFilter selects approvals for List. Empty fields match everything.
type ApprovalFilter struct {
	Status, Game, Env, Requester string
	PageSize                     int
	PageToken                    string
}

const (
	DefaultApprovalsPageSize = 50
	MaxApprovalsPageSize     = 500
)

// Approvals stores approval requests.
type Approvals struct{ s *Store }

// Approvals returns the store of approval requests.
func (s *Store) Approvals() *Approvals { return &Approvals{s: s} }

func validApprovalStatus(s string) bool {
	switch s {
	case ApprovalPending, ApprovalApproved, ApprovalRejected, ApprovalExpired, ApprovalExecuted, ApprovalFailed:
		return true
	}
	return false
}

// Create stores a new request in status pending. ErrConflict if the id is
// taken.
func (x *Approvals) Create(ctx context.Context, a Approval) error {
	if a.ID == "" || a.Requester == "" || a.Game == "" || a.Env == "" || a.Function == "" {
		return invalid("an approval needs an id, a requester, a game, an env and a function")
	}
	if a.ExpiresAt.IsZero() {
		return invalid("an approval needs an expiry")
	}
	sens, err := json.Marshal(nonNil(a.SensitiveFields))
	if err != nil {
		return invalid("sensitive fields: %v", err)
	}
	payload, opts := a.Payload, a.Options
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	if len(opts) == 0 {
		opts = []byte("{}")
	}
	now := x.s.nowMs()
	created := timeToMs(a.CreatedAt)
	if created == 0 {
		created = now
	}
	_, err = x.s.db.ExecContext(ctx,
		`INSERT INTO approvals (approval_id, requester, game_id, env, function_id, payload, options, sensitive_fields,
		   status, created_at, expires_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10, $11)`,
		a.ID, a.Requester, a.Game, a.Env, a.Function, payload, opts, string(sens), created, timeToMs(a.ExpiresAt), now)
	if err != nil {
		err = dbErr(ctx, "create approval", err)
		if errors.Is(err, ErrConflict) {
			return conflict("approval %q already exists", a.ID)
		}
		return err
	}
	return nil
}

const approvalColumns = `approval_id, requester, game_id, env, function_id, payload, options, sensitive_fields, status,
	created_at, expires_at, decided_by, decided_at, reason, job_id, error_message, updated_at`

// Get returns the request; ErrNotFound if there is none.
func (x *Approvals) Get(ctx context.Context, id string) (Approval, error) {
	rows, err := x.s.db.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE approval_id = $1`, id)
	if err != nil {
		return Approval{}, dbErr(ctx, "get approval", err)
	}
	out, err := scanApprovals(ctx, rows)
	if err != nil {
		return Approval{}, err
	}
	if len(out) == 0 {
		return Approval{}, notFound("approval %q", id)
	}
	return out[0], nil
}

// Decide moves a pending, unexpired request to status (approved or
// rejected) in one conditional UPDATE, so of two concurrent deciders exactly
// one succeeds. It returns the updated request, or ErrConflict with the
// request as it is when it was no longer pending or had expired at at.
func (x *Approvals) Decide(ctx context.Context, id, status, decidedBy, reason string, at time.Time) (Approval, error) {
	if status != ApprovalApproved && status != ApprovalRejected {
		return Approval{}, invalid("an approval is decided as approved or rejected, not %q", status)
	}
	ms := timeToMs(at)
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE approvals SET status = $1, decided_by = $2, decided_at = $3, reason = $4, updated_at = $3
		 WHERE approval_id = $5 AND status = 'pending' AND expires_at > $3`,
		status, decidedBy, ms, reason, id)
	return x.afterTransition(ctx, "decide approval", id, res, err)
}

// MarkExecuted records the job an approved request started.
func (x *Approvals) MarkExecuted(ctx context.Context, id, jobID string) (Approval, error) {
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE approvals SET status = 'executed', job_id = $1, updated_at = $2 WHERE approval_id = $3 AND status = 'approved'`,
		jobID, x.s.nowMs(), id)
	return x.afterTransition(ctx, "mark approval executed", id, res, err)
}

// MarkFailed records that an approved request could not be started.
func (x *Approvals) MarkFailed(ctx context.Context, id, message string) (Approval, error) {
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE approvals SET status = 'failed', error_message = $1, updated_at = $2 WHERE approval_id = $3 AND status = 'approved'`,
		message, x.s.nowMs(), id)
	return x.afterTransition(ctx, "mark approval failed", id, res, err)
}

// afterTransition reads the request back after a conditional UPDATE and
// returns ErrConflict (with the row) when the UPDATE matched nothing.
func (x *Approvals) afterTransition(ctx context.Context, op, id string, res sql.Result, err error) (Approval, error) {
	if err != nil {
		return Approval{}, dbErr(ctx, op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Approval{}, dbErr(ctx, op, err)
	}
	a, err := x.Get(ctx, id)
	if err != nil {
		return Approval{}, err
	}
	if n == 0 {
		return a, conflict("approval %q is %s", id, a.Status)
	}
	return a, nil
}

// ExpireDue marks pending requests whose expiry is at or before now as
// expired and returns them.
func (x *Approvals) ExpireDue(ctx context.Context, now time.Time) ([]Approval, error) {
	var out []Approval
	err := x.s.inTx(ctx, "expire approvals", func(tx *sql.Tx) error {
		ms := timeToMs(now)
		rows, err := tx.QueryContext(ctx,
			`UPDATE approvals SET status = 'expired', updated_at = $1 WHERE status = 'pending' AND expires_at <= $1
			 RETURNING `+approvalColumns, ms)
		if err != nil {
			return dbErr(ctx, "expire approvals", err)
		}
		out, err = scanApprovals(ctx, rows)
		return err
	})
	return out, err
}

// FailStale marks requests approved before cutoff that never started (the
// server stopped between the decision and the start) as failed with message,
// and returns them.
func (x *Approvals) FailStale(ctx context.Context, cutoff time.Time, message string) ([]Approval, error) {
	var out []Approval
	err := x.s.inTx(ctx, "fail stale approvals", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`UPDATE approvals SET status = 'failed', error_message = $1, updated_at = $2
			 WHERE status = 'approved' AND decided_at < $3 RETURNING `+approvalColumns,
			message, x.s.nowMs(), timeToMs(cutoff))
		if err != nil {
			return dbErr(ctx, "fail stale approvals", err)
		}
		out, err = scanApprovals(ctx, rows)
		return err
	})
	return out, err
}

type approvalsPageToken struct {
	CreatedAt int64  `json:"c"`
	ID        string `json:"i"`
}

// List returns requests matching f, newest first, and a token for the next
// page ("" on the last page).
func (x *Approvals) List(ctx context.Context, f ApprovalFilter) ([]Approval, string, error) {
	if f.Status != "" && !validApprovalStatus(f.Status) {
		return nil, "", invalid("unknown approval status %q (pending, approved, rejected, expired, executed, failed)", f.Status)
	}
	size := f.PageSize
	if size <= 0 {
		size = DefaultApprovalsPageSize
	}
	size = min(size, MaxApprovalsPageSize)
	var (
		conds []string
		args  []any
	)
	cond := func(expr string, v ...any) {
		for _, a := range v {
			args = append(args, a)
			expr = strings.Replace(expr, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		conds = append(conds, expr)
	}
	for _, c := range []struct{ col, v string }{
		{"status", f.Status}, {"game_id", f.Game}, {"env", f.Env}, {"requester", f.Requester},
	} {
		if c.v != "" {
			cond(c.col+" = ?", c.v)
		}
	}
	if f.PageToken != "" {
		var t approvalsPageToken
		b, err := base64.RawURLEncoding.DecodeString(f.PageToken)
		if err != nil || json.Unmarshal(b, &t) != nil || t.ID == "" {
			return nil, "", invalid("malformed approvals page token")
		}
		cond("(created_at, approval_id) < (?, ?)", t.CreatedAt, t.ID)
	}
	q := `SELECT ` + approvalColumns + ` FROM approvals`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, size+1)
	q += ` ORDER BY created_at DESC, approval_id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", dbErr(ctx, "list approvals", err)
	}
	out, err := scanApprovals(ctx, rows)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= size {
		return out, "", nil
	}
	out = out[:size]
	last := out[size-1]
	b, _ := json.Marshal(approvalsPageToken{CreatedAt: timeToMs(last.CreatedAt), ID: last.ID}) // cannot fail
	return out, base64.RawURLEncoding.EncodeToString(b), nil
}

func scanApprovals(ctx context.Context, rows *sql.Rows) ([]Approval, error) {
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		var (
			a                                  Approval
			sens                               string
			created, expires, decided, updated int64
		)
		if err := rows.Scan(&a.ID, &a.Requester, &a.Game, &a.Env, &a.Function, &a.Payload, &a.Options, &sens, &a.Status,
			&created, &expires, &a.DecidedBy, &decided, &a.Reason, &a.JobID, &a.Error, &updated); err != nil {
			return nil, dbErr(ctx, "read approvals", err)
		}
		if err := json.Unmarshal([]byte(sens), &a.SensitiveFields); err != nil {
			return nil, &Error{Op: "read approvals", cause: err}
		}
		a.CreatedAt, a.ExpiresAt, a.DecidedAt, a.UpdatedAt = msToTime(created), msToTime(expires), msToTime(decided), msToTime(updated)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "read approvals", err)
	}
	return out, nil
}
