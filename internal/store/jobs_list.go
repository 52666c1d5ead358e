package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// JobFilter selects jobs for List. Empty fields match everything.
type JobFilter struct {
	Game     string
	Env      string
	Function string
	Status   string
	// CreatedAfter is inclusive, CreatedBefore exclusive; zero means open.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// PageSize defaults to DefaultJobsPageSize and is capped at
	// MaxJobsPageSize.
	PageSize int
	// PageToken continues a previous List; pass the same filter with it.
	PageToken string
}

const (
	DefaultJobsPageSize = 50
	MaxJobsPageSize     = 1000
)

// pageToken is the position after the last job of a page in List's order
// (created_at DESC, job_id DESC). It is opaque to callers.
type pageToken struct {
	CreatedAt int64  `json:"c"`
	ID        string `json:"i"`
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t) // cannot fail: an int and a string
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(s string) (pageToken, error) {
	var t pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &t) != nil || t.ID == "" {
		return t, invalid("malformed jobs page token: pass the next_page_token of the previous page unchanged, with the same filters, or none for the first page")
	}
	return t, nil
}

// List returns jobs matching f, newest first (by creation time, then id), and
// a token for the next page ("" when this is the last page). Paging is by
// key, so jobs created while paging never shift or repeat entries.
func (x *Jobs) List(ctx context.Context, f JobFilter) ([]Job, string, error) {
	if f.Status != "" && !validStatus(f.Status) {
		return nil, "", invalid("unknown job status %q (%s, %s, %s, %s, %s)", f.Status, JobPending, JobRunning, JobCompleted, JobFailed, JobCanceled)
	}
	size := f.PageSize
	if size <= 0 {
		size = DefaultJobsPageSize
	}
	size = min(size, MaxJobsPageSize)

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
	if f.Game != "" {
		cond("game_id = ?", f.Game)
	}
	if f.Env != "" {
		cond("env = ?", f.Env)
	}
	if f.Function != "" {
		cond("function_id = ?", f.Function)
	}
	if f.Status != "" {
		cond("status = ?", f.Status)
	}
	if !f.CreatedAfter.IsZero() {
		cond("created_at >= ?", f.CreatedAfter.UnixMilli())
	}
	if !f.CreatedBefore.IsZero() {
		cond("created_at < ?", f.CreatedBefore.UnixMilli())
	}
	if f.PageToken != "" {
		t, err := decodePageToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		cond("(created_at, job_id) < (?, ?)", t.CreatedAt, t.ID)
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, size+1) // one extra row tells whether a next page exists
	q += ` ORDER BY created_at DESC, job_id DESC LIMIT $` + strconv.Itoa(len(args))

	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", dbErr(ctx, "list jobs", err)
	}
	defer rows.Close()
	out := make([]Job, 0, min(size+1, 64))
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, "", dbErr(ctx, "list jobs", err)
		}
		out = append(out, *j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", dbErr(ctx, "list jobs", err)
	}
	if len(out) <= size {
		return out, "", nil
	}
	out = out[:size]
	last := out[size-1]
	return out, pageToken{CreatedAt: last.CreatedAt.UnixMilli(), ID: last.ID}.encode(), nil
}
