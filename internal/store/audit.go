package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AuditRecord is one row of the append-only audit log. ID, PrevHash and Hash
// are assigned by Append; internal/audit defines how Hash is computed.
type AuditRecord struct {
	ID       int64
	Time     time.Time
	Actor    string
	Action   string
	Game     string
	Env      string
	Function string
	// Payload is JSON, already masked.
	Payload    string
	Result     string
	DurationMs int64
	RequestID  string
	PrevHash   string
	Hash       string
}

// AuditHead is the end of the chain as Append last left it.
type AuditHead struct {
	LastID   int64
	LastHash string
}

// AuditFilter selects audit rows for List. Empty fields match everything.
type AuditFilter struct {
	Game, Env, Actor, Function, Action string
	// From is inclusive, To exclusive; zero means open.
	From, To time.Time
	// PageSize defaults to DefaultAuditPageSize, capped at MaxAuditPageSize.
	PageSize int
	// PageToken continues a previous List; pass the same filter with it.
	PageToken string
}

const (
	DefaultAuditPageSize = 100
	MaxAuditPageSize     = 1000
)

// Audit stores the audit log.
type Audit struct{ s *Store }

// Audit returns the audit log store.
func (s *Store) Audit() *Audit { return &Audit{s: s} }

// Append adds rec at the end of the chain (AppendBatch of one).
func (x *Audit) Append(ctx context.Context, rec AuditRecord, seal func(*AuditRecord) string) (AuditRecord, error) {
	out, err := x.AppendBatch(ctx, []AuditRecord{rec}, seal)
	if err != nil {
		return AuditRecord{}, err
	}
	return out[0], nil
}

// AppendBatch adds recs, in order, at the end of the chain, and returns
// them as stored: it sets each one's ID, PrevHash and Hash, and its Time to
// the stored precision in UTC, in recs itself (so a batch costs no copy). In one
// transaction it claims the next len(recs) ids by updating the single
// audit_head row — which holds that row's lock (PostgreSQL: a row lock under
// READ COMMITTED, so a concurrent appender on any node waits and then reads
// the new head; SQLite: the database write lock, taken at BEGIN IMMEDIATE) —
// chains each record to the one before (setting ID and PrevHash and calling
// seal for Hash), inserts them and moves the head. Appends are therefore
// totally ordered with no gaps, and a missing id means a deleted row. On
// error nothing is stored (recs may be partly updated; a retry with them
// assigns ID, PrevHash, Hash and Time again).
func (x *Audit) AppendBatch(ctx context.Context, recs []AuditRecord, seal func(*AuditRecord) string) ([]AuditRecord, error) {
	return x.AppendJournaled(ctx, AuditJournalPos{}, recs, seal)
}

// AuditJournalPos names how far a journal's entries are stored: every entry
// of journal ID up to and including Seq. The zero value names no journal.
type AuditJournalPos struct {
	ID  string
	Seq int64
}

// AppendJournaled is AppendBatch for recs moved out of an audit journal:
// the same transaction records pos as that journal's applied position, so a
// replay after a crash skips exactly the entries stored (see
// JournalApplied). A zero pos records nothing.
func (x *Audit) AppendJournaled(ctx context.Context, pos AuditJournalPos, recs []AuditRecord, seal func(*AuditRecord) string) ([]AuditRecord, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	out := recs
	// The statements are prepared before the transaction takes its
	// connection: preparing needs a connection of the pool too.
	var stmts [len(auditChunkSizes)]*sql.Stmt
	for n := len(out); n > 0; n -= auditChunk(n) {
		i := auditChunkIndex(auditChunk(n))
		if stmts[i] != nil {
			continue
		}
		st, err := x.s.auditInserts.get(ctx, x.s, auditChunkSizes[i])
		if err != nil {
			return nil, dbErr(ctx, "append audit records", err)
		}
		stmts[i] = st
	}
	err := x.appendTx(ctx, pos.ID != "", func(tx *sql.Tx) error {
		var last int64
		var prev string
		if err := tx.QueryRowContext(ctx,
			`UPDATE audit_head SET last_id = last_id + $1 WHERE k = 1 RETURNING last_id, last_hash`, len(out)).Scan(&last, &prev); err != nil {
			return dbErr(ctx, "append audit records", err)
		}
		for i := range out {
			rec := &out[i]
			rec.ID, rec.PrevHash = last-int64(len(out)-1-i), prev
			rec.Time = msToTime(timeToMs(rec.Time)) // the stored precision, so seal hashes what is stored
			rec.Hash = seal(rec)
			prev = rec.Hash
		}
		// A statement per chunk of rows, not per row, and prepared once per
		// connection (auditInserts): parsing a statement of 64 rows cost
		// ~10 % of the flusher's CPU when each flush prepared it again.
		args := make([]any, 0, min(len(out), auditRowsPerInsert)*auditInsertColumns)
		for rest := out; len(rest) > 0; {
			n := auditChunk(len(rest))
			chunk := rest[:n]
			rest = rest[n:]
			args = args[:0]
			for i := range chunk {
				rec := &chunk[i]
				args = append(args, rec.ID, timeToMs(rec.Time), rec.Actor, rec.Action, rec.Game, rec.Env, rec.Function, rec.Payload,
					rec.Result, rec.DurationMs, rec.RequestID, rec.PrevHash, rec.Hash)
			}
			if _, err := tx.StmtContext(ctx, stmts[auditChunkIndex(n)]).ExecContext(ctx, args...); err != nil {
				return dbErr(ctx, "append audit records", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_head SET last_hash = $1 WHERE k = 1`, prev); err != nil {
			return dbErr(ctx, "append audit records", err)
		}
		if pos.ID == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO audit_journals (id, applied_seq) VALUES ($1, $2)
			 ON CONFLICT (id) DO UPDATE SET applied_seq = excluded.applied_seq`, pos.ID, pos.Seq)
		return dbErr(ctx, "append audit records", err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditInsertColumns is the number of columns insertAuditSQL writes per row;
// auditRowsPerInsert bounds a statement's parameters (13 × 64 = 832, far
// below SQLite's and PostgreSQL's limits).
const (
	auditInsertColumns = 13
	auditRowsPerInsert = 64
)

// auditChunkSizes are the row counts of the INSERT statements a batch is
// split into, largest first: a batch of 75 rows is 64 + 4 + 4 + 1 + 1 + 1.
// A few fixed sizes keep the prepared statements few (auditInserts).
var auditChunkSizes = [...]int{auditRowsPerInsert, 16, 4, 1}

// auditChunk returns the size of the next chunk of a batch of n > 0 rows.
func auditChunk(n int) int {
	for _, c := range auditChunkSizes {
		if n >= c {
			return c
		}
	}
	return 1
}

func auditChunkIndex(size int) int {
	for i, c := range auditChunkSizes {
		if c == size {
			return i
		}
	}
	panic("store: no audit chunk of size " + strconv.Itoa(size))
}

// auditInsertCache holds the prepared INSERT of each of auditChunkSizes.
// database/sql prepares a Stmt again on each connection it runs on and
// keeps it there, so each pooled connection parses each statement once.
type auditInsertCache struct {
	mu    sync.Mutex
	stmts map[int]*sql.Stmt
}

func (c *auditInsertCache) get(ctx context.Context, s *Store, n int) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[n]; st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, insertAuditSQL(s.anonParams, n))
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = make(map[int]*sql.Stmt, len(auditChunkSizes))
	}
	c.stmts[n] = st
	return st, nil
}

// close closes the prepared statements (Store.Close).
func (c *auditInsertCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts = nil
}

// insertAuditSQL builds the INSERT of n audit rows, with "$N" parameters
// on PostgreSQL and anonymous "?" on SQLite (see Store.anonParams).
func insertAuditSQL(anon bool, n int) string {
	var b strings.Builder
	b.Grow(160 + n*auditInsertColumns*5)
	b.WriteString(`INSERT INTO audit_log (id, ts_ms, actor, action, game_id, env, function_id, payload, result, duration_ms, request_id, prev_hash, hash) VALUES `)
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range auditInsertColumns {
			if c > 0 {
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
	return b.String()
}

// appendTx runs fn in a transaction. durable (an append from a journal,
// which the caller empties once it returns) makes an SQLite commit fsync its
// WAL (synchronous=FULL for that transaction only; the store runs NORMAL):
// otherwise an OS crash could lose rows whose only other copy, the journal,
// was already emptied. A PostgreSQL commit is durable already
// (synchronous_commit=on).
func (x *Audit) appendTx(ctx context.Context, durable bool, fn func(tx *sql.Tx) error) error {
	const op = "append audit records"
	if !durable || x.s.driver != DriverSQLite {
		return x.s.inTx(ctx, op, fn)
	}
	conn, err := x.s.db.Conn(ctx)
	if err != nil {
		return dbErr(ctx, op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return dbErr(ctx, op, err)
	}
	defer func() {
		// Back to the store's setting before the connection returns to the
		// pool; if that fails, drop the connection rather than reuse it.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(ctx, op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbErr(ctx, op, err)
	}
	return nil
}

// JournalApplied returns the last sequence of journal id whose entry is
// stored, 0 when none is.
func (x *Audit) JournalApplied(ctx context.Context, id string) (int64, error) {
	var seq int64
	err := x.s.db.QueryRowContext(ctx, `SELECT applied_seq FROM audit_journals WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, dbErr(ctx, "read audit journal position", err)
	}
	return seq, nil
}

// Head returns the chain's head.
func (x *Audit) Head(ctx context.Context) (AuditHead, error) {
	var h AuditHead
	err := x.s.db.QueryRowContext(ctx, `SELECT last_id, last_hash FROM audit_head WHERE k = 1`).Scan(&h.LastID, &h.LastHash)
	if err != nil {
		return AuditHead{}, dbErr(ctx, "read audit head", err)
	}
	return h, nil
}

const auditColumns = `id, ts_ms, actor, action, game_id, env, function_id, payload, result, duration_ms, request_id, prev_hash, hash`

// Range returns up to limit rows with afterID < id <= uptoID in id order,
// for verification.
func (x *Audit) Range(ctx context.Context, afterID, uptoID int64, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		return nil, invalid("audit range limit must be positive, got %d", limit)
	}
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT `+auditColumns+` FROM audit_log WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3`, afterID, uptoID, limit)
	if err != nil {
		return nil, dbErr(ctx, "read audit log", err)
	}
	return scanAudit(ctx, rows, limit)
}

// List returns rows matching f, newest first, and a token for the next page
// ("" on the last page). Every value travels as a bind parameter.
func (x *Audit) List(ctx context.Context, f AuditFilter) ([]AuditRecord, string, error) {
	size := f.PageSize
	if size <= 0 {
		size = DefaultAuditPageSize
	}
	size = min(size, MaxAuditPageSize)
	var (
		conds []string
		args  []any
	)
	cond := func(expr string, v any) {
		args = append(args, v)
		conds = append(conds, strings.Replace(expr, "?", "$"+strconv.Itoa(len(args)), 1))
	}
	for _, c := range []struct{ col, v string }{
		{"game_id", f.Game}, {"env", f.Env}, {"actor", f.Actor}, {"function_id", f.Function}, {"action", f.Action},
	} {
		if c.v != "" {
			cond(c.col+" = ?", c.v)
		}
	}
	if !f.From.IsZero() {
		cond("ts_ms >= ?", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		cond("ts_ms < ?", f.To.UnixMilli())
	}
	if f.PageToken != "" {
		before, err := decodeAuditPageToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		cond("id < ?", before)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, size+1) // one extra row tells whether a next page exists
	q += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", dbErr(ctx, "list audit log", err)
	}
	out, err := scanAudit(ctx, rows, size+1)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= size {
		return out, "", nil
	}
	out = out[:size]
	return out, encodeAuditPageToken(out[size-1].ID), nil
}

// The page token is the last id returned, opaque to callers.
func encodeAuditPageToken(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a" + strconv.FormatInt(id, 10)))
}

func decodeAuditPageToken(s string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 'a' {
		return 0, invalid("malformed audit page token")
	}
	id, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("malformed audit page token")
	}
	return id, nil
}

func scanAudit(ctx context.Context, rows *sql.Rows, capHint int) ([]AuditRecord, error) {
	defer rows.Close()
	out := make([]AuditRecord, 0, min(capHint, 256))
	for rows.Next() {
		var (
			r  AuditRecord
			ts int64
		)
		if err := rows.Scan(&r.ID, &ts, &r.Actor, &r.Action, &r.Game, &r.Env, &r.Function, &r.Payload,
			&r.Result, &r.DurationMs, &r.RequestID, &r.PrevHash, &r.Hash); err != nil {
			return nil, dbErr(ctx, "read audit log", err)
		}
		r.Time = msToTime(ts)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "read audit log", err)
	}
	return out, nil
}
