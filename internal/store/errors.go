package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Every error the store returns for these conditions wraps
// one of them with context (which scope, which job), so callers map them
// with errors.Is.
var (
	// ErrNotFound: the addressed row (scope, function, job, record) does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write clashes with existing state — a duplicate id, or
	// a record in a state that does not allow the operation.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the caller passed a value the store refuses (an
	// empty id, an unknown job status, a malformed page token).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the database is busy, unreachable or shutting down;
	// retrying later may succeed.
	ErrUnavailable = errors.New("database unavailable")
)

// Error is a database failure. Its Error string names the operation, the
// error class and the database's error code, but never SQL text, values or
// driver messages, so it is safe to log at any level and to hand upwards.
// Unwrap exposes the sentinel (if any) and the driver error for diagnostics.
type Error struct {
	Op string
	// Kind is ErrNotFound, ErrConflict, ErrInvalidArgument, ErrUnavailable,
	// or nil for an unclassified (internal) failure.
	Kind error
	// Code is the database's code: "SQLSTATE 23505" or "sqlite 2067".
	Code  string
	cause error
}

func (e *Error) Error() string {
	kind := "database error"
	if e.Kind != nil {
		kind = e.Kind.Error()
	}
	if e.Code == "" {
		return "store: " + e.Op + ": " + kind
	}
	return "store: " + e.Op + ": " + kind + " (" + e.Code + ")"
}

// Unwrap returns the sentinel kind and the driver's error.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.cause}
	}
	return []error{e.Kind, e.cause}
}

// dbErr classifies a database/sql or driver error from operation op. A
// cancelled or expired ctx wins over whatever the driver reported, so
// callers see context.Canceled / context.DeadlineExceeded.
func dbErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx != nil && ctx.Err() != nil {
		return fmt.Errorf("store: %s: %w", op, ctx.Err())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &Error{Op: op, Kind: ErrNotFound, cause: err}
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return &Error{Op: op, Kind: sqliteKind(lite.Code()), Code: "sqlite " + strconv.Itoa(lite.Code()), cause: err}
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return &Error{Op: op, Kind: postgresKind(pg.Code), Code: "SQLSTATE " + pg.Code, cause: err}
	}
	var netErr net.Error
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.As(err, &netErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return &Error{Op: op, Kind: ErrUnavailable, cause: err}
	}
	return &Error{Op: op, cause: err}
}

// wrapErr is dbErr without a context, for Open and Close.
func wrapErr(op string, err error) error { return dbErr(context.Background(), op, err) }

// sqliteKind maps an (extended) SQLite result code.
func sqliteKind(code int) error {
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return ErrConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return ErrNotFound
	}
	switch code & 0xff { // primary result code
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_RANGE:
		return ErrInvalidArgument
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM:
		return ErrUnavailable
	}
	return nil
}

// postgresKind maps a SQLSTATE
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
func postgresKind(state string) error {
	switch state {
	case "23505": // unique_violation
		return ErrConflict
	case "23503": // foreign_key_violation
		return ErrNotFound
	case "40001", "40P01": // serialization_failure, deadlock_detected: retry
		return ErrUnavailable
	case "57P01", "57P02", "57P03": // admin/crash shutdown, cannot connect now
		return ErrUnavailable
	}
	switch {
	case strings.HasPrefix(state, "22"), strings.HasPrefix(state, "23"): // data exception, integrity
		return ErrInvalidArgument
	case strings.HasPrefix(state, "08"), strings.HasPrefix(state, "53"): // connection, resources
		return ErrUnavailable
	}
	return nil
}

// notFound, conflict and invalid build domain errors with context.
func notFound(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, ErrNotFound)...)
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, ErrConflict)...)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, ErrInvalidArgument)...)
}

// Message is a store error's message for the caller who caused it:
// without the package prefix and the sentinel's text (": not found",
// ": conflict", …), which mean nothing to an API client.
func Message(err error) string {
	msg := strings.TrimPrefix(err.Error(), "store: ")
	for _, s := range []error{ErrNotFound, ErrConflict, ErrInvalidArgument, ErrNotOwner, ErrNoCapacity} {
		if m, ok := strings.CutSuffix(msg, ": "+s.Error()); ok && m != "" {
			return m
		}
	}
	return msg
}
