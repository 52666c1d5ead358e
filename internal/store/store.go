// Package store persists Croupier's durable state: declared scopes, function
// descriptors, assignments, idempotency records, and jobs with their event
// logs.
//
// One implementation serves both supported databases: embedded SQLite (the
// pure-Go modernc.org/sqlite driver, a file in the data dir) and PostgreSQL
// (jackc/pgx through database/sql). Queries are written once in the subset of
// SQL both understand — `$N` placeholders, INSERT ... ON CONFLICT, RETURNING,
// row-value comparisons — so the same code and the same test suite run on
// both. Only the migrations differ per dialect, and only where column types
// or table options really differ (see migrations/).
//
// Errors returned by the store never carry SQL text or driver messages in
// their Error string; callers test them with errors.Is against ErrNotFound,
// ErrConflict, ErrInvalidArgument and ErrUnavailable, and context errors pass
// through unchanged.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// Driver names accepted in Config.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config says which database to open and how.
type Config struct {
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN is, for sqlite, the path of the database file (its directory is
	// created if missing); for postgres, a connection URL
	// (postgres://user:pass@host:5432/db?sslmode=disable) or a key=value
	// connection string.
	DSN string
	// MaxOpenConns caps the connection pool; 0 picks a default per driver
	// (see defaultMaxOpenConns).
	MaxOpenConns int
	// Logger receives migration progress and the warning about a database
	// file readable by other users. Nil discards them.
	Logger *slog.Logger
	// Now is the clock used for timestamps the store fills in itself
	// (creation times, idempotency expiry). Nil means time.Now. Tests inject
	// a fake clock here.
	Now func() time.Time
}

// Store is an open database with Croupier's sub-stores. It is safe for
// concurrent use; Close it once when done.
type Store struct {
	db     *sql.DB
	driver string
	// pgLockID identifies the advisory lock that serialises migrations of
	// this database+schema across server nodes (postgres only).
	pgLockID int64
	logger   *slog.Logger
	now      func() time.Time
	// anonParams makes statements with hundreds of parameters use
	// anonymous "?" instead of "$N" (SQLite only). SQLite accepts $N, but
	// the driver asks SQLite for each parameter's name when binding, and
	// that lookup scans the list of named parameters: binding n of them
	// costs O(n²). Anonymous parameters have no names to scan.
	anonParams bool
	// auditInserts are the audit log's prepared INSERTs (audit.go).
	auditInserts auditInsertCache
}

// Open opens the database named by cfg, applies per-connection settings and
// checks that it answers. It does not migrate; call Migrate for that.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{driver: cfg.Driver, logger: cfg.Logger, now: cfg.Now, anonParams: cfg.Driver == DriverSQLite}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = s.logger
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.MaxOpenConns < 0 {
		return nil, fmt.Errorf("store: MaxOpenConns must be >= 0, got %d", cfg.MaxOpenConns)
	}
	var err error
	switch cfg.Driver {
	case DriverSQLite:
		s.db, err = openSQLite(cfg)
	case DriverPostgres:
		s.db, err = openPostgres(cfg)
	default:
		return nil, fmt.Errorf("store: unknown driver %q: use %q or %q", cfg.Driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, err
	}
	maxOpen := cfg.MaxOpenConns
	if maxOpen == 0 {
		maxOpen = defaultMaxOpenConns(cfg.Driver)
	}
	s.db.SetMaxOpenConns(maxOpen)
	s.db.SetMaxIdleConns(maxOpen)
	if err := s.db.PingContext(ctx); err != nil {
		_ = s.db.Close()
		// Unlike query errors, the driver's reason is kept in the message:
		// "connection refused" or "password authentication failed" is what
		// an operator needs at start-up, and carries no SQL.
		return nil, fmt.Errorf("%w: %v", dbErr(ctx, "open "+cfg.Driver+" database", err), err)
	}
	if cfg.Driver == DriverPostgres {
		if s.pgLockID, err = s.postgresLockID(ctx); err != nil {
			_ = s.db.Close()
			return nil, err
		}
	}
	return s, nil
}

// defaultMaxOpenConns sizes the pool. SQLite allows one writer at a time, so
// a few connections are enough for concurrent readers in WAL mode while
// writers queue on busy_timeout; PostgreSQL benefits from more.
func defaultMaxOpenConns(driver string) int {
	if driver == DriverSQLite {
		return 4
	}
	return 16
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.auditInserts.close()
	if err := s.db.Close(); err != nil {
		return wrapErr("close", err)
	}
	return nil
}

// Driver returns "sqlite" or "postgres".
func (s *Store) Driver() string { return s.driver }

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return dbErr(ctx, "ping", err)
	}
	return nil
}

// Scopes returns the store of declared game/env pairs.
func (s *Store) Scopes() *Scopes { return &Scopes{s: s} }

// Functions returns the store of registered function descriptors.
func (s *Store) Functions() *Functions { return &Functions{s: s} }

// Assignments returns the store of per-function enablement and config.
func (s *Store) Assignments() *Assignments { return &Assignments{s: s} }

// Idempotency returns the store of idempotency records.
func (s *Store) Idempotency() *Idempotency { return &Idempotency{s: s} }

// Jobs returns the store of jobs and their events.
func (s *Store) Jobs() *Jobs { return &Jobs{s: s} }

// nowMs is the store clock in unix milliseconds, the unit of every
// timestamp column.
func (s *Store) nowMs() int64 { return s.now().UnixMilli() }

// inTx runs fn in a transaction and commits it, or rolls back when fn fails.
// On SQLite every transaction begins IMMEDIATE (see openSQLite), so writers
// queue for the write lock up front instead of failing on lock upgrade.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
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

// msToTime converts a stored unix-millisecond column to UTC; 0 means unset.
func msToTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// timeToMs converts for storage; the zero time is stored as 0 (unset).
func timeToMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
