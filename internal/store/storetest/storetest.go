// Package storetest opens real, migrated stores for tests: SQLite in a
// temporary directory, and PostgreSQL in a fresh schema of the database named
// by CROUPIER_TEST_POSTGRES_DSN. Other packages use it to test against the
// real store instead of fakes.
//
// Without CROUPIER_TEST_POSTGRES_DSN the PostgreSQL half skips — unless
// CI=true or CROUPIER_REQUIRE_POSTGRES=1, where it fails, so a CI run cannot
// silently lose half of the suite. scripts/postgres.sh starts a server and
// prints a DSN.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/croupier/croupier/internal/store"
)

// Environment variables the package reads.
const (
	EnvPostgresDSN     = "CROUPIER_TEST_POSTGRES_DSN"
	EnvRequirePostgres = "CROUPIER_REQUIRE_POSTGRES"
)

// setupTimeout bounds opening, migrating and dropping a test database.
const setupTimeout = 60 * time.Second

// Option adjusts the store.Config a helper opens with.
type Option func(*store.Config)

// WithClock makes the store read time from now.
func WithClock(now func() time.Time) Option {
	return func(c *store.Config) { c.Now = now }
}

// WithMaxOpenConns sets the pool size.
func WithMaxOpenConns(n int) Option {
	return func(c *store.Config) { c.MaxOpenConns = n }
}

// PostgresRequired reports whether a missing PostgreSQL DSN fails tests
// instead of skipping them.
func PostgresRequired() bool {
	return os.Getenv("CI") == "true" || os.Getenv(EnvRequirePostgres) == "1"
}

// Run runs fn as two subtests, "sqlite" and "postgres", each with its own
// fresh, migrated store.
func Run(t *testing.T, fn func(t *testing.T, s *store.Store), opts ...Option) {
	t.Helper()
	t.Run(store.DriverSQLite, func(t *testing.T) { fn(t, SQLite(t, opts...)) })
	t.Run(store.DriverPostgres, func(t *testing.T) { fn(t, Postgres(t, opts...)) })
}

// Open opens a migrated store of the given driver ("sqlite" or "postgres").
func Open(t testing.TB, driver string, opts ...Option) *store.Store {
	t.Helper()
	if driver == store.DriverPostgres {
		return Postgres(t, opts...)
	}
	return SQLite(t, opts...)
}

// SQLite opens a migrated store on a new database file in t.TempDir(); it is
// closed when the test ends.
func SQLite(t testing.TB, opts ...Option) *store.Store {
	t.Helper()
	cfg := store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "croupier.db")}
	return openMigrated(t, cfg, opts)
}

// Postgres opens a migrated store in a new schema of the test database; the
// schema is dropped when the test ends. It skips the test when no DSN is set,
// or fails it when PostgresRequired.
func Postgres(t testing.TB, opts ...Option) *store.Store {
	t.Helper()
	dsn := os.Getenv(EnvPostgresDSN)
	if dsn == "" {
		if PostgresRequired() {
			t.Fatalf("%s is not set but PostgreSQL tests are required (CI=true or %s=1); start a server with `scripts/postgres.sh start DIR` and export the DSN it prints", EnvPostgresDSN, EnvRequirePostgres)
		}
		t.Skipf("%s is not set; skipping PostgreSQL (scripts/postgres.sh start DIR prints a DSN)", EnvPostgresDSN)
	}
	schema := "croupier_test_" + randomHex(t, 8)
	admin := adminDB(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	// Registered after the schema cleanup, so it runs first: the store's
	// connections close before the schema is dropped.
	cfg := store.Config{Driver: store.DriverPostgres, DSN: WithSearchPath(t, dsn, schema)}
	return openMigrated(t, cfg, opts)
}

// WithSearchPath returns dsn with search_path set to schema, for URL and
// key=value connection strings alike.
func WithSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s does not parse as a URL", EnvPostgresDSN)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

func openMigrated(t testing.TB, cfg store.Config, opts []Option) *store.Store {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s store: %v", cfg.Driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s store: %v", cfg.Driver, err)
		}
	})
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s store: %v", cfg.Driver, err)
	}
	return s
}

func adminDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("%s does not parse", EnvPostgresDSN)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(1)
	return db
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random schema name: %v", err)
	}
	return hex.EncodeToString(b)
}
