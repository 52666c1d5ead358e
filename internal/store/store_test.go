package store_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestOpenRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  store.Config
		want string
	}{
		{"unknown driver", store.Config{Driver: "mysql", DSN: "x"}, `unknown driver "mysql"`},
		{"sqlite without path", store.Config{Driver: "sqlite"}, "needs a database file path"},
		{"sqlite in memory", store.Config{Driver: "sqlite", DSN: ":memory:"}, "plain file path"},
		{"sqlite uri", store.Config{Driver: "sqlite", DSN: "file:x.db?mode=ro"}, "plain file path"},
		{"sqlite query chars", store.Config{Driver: "sqlite", DSN: filepath.Join(dir, "a?b.db")}, "must not contain"},
		{"negative pool", store.Config{Driver: "sqlite", DSN: filepath.Join(dir, "a.db"), MaxOpenConns: -1}, "MaxOpenConns"},
		{"postgres without DSN", store.Config{Driver: "postgres"}, "needs a connection URL"},
		{"postgres bad DSN", store.Config{Driver: "postgres", DSN: "postgres://u:s3cr3t@host:notaport/db"}, "does not parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(ctxT(t), tc.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestOpenPostgresUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	// Port 1 on loopback refuses at once; nothing leaves the machine.
	_, err := store.Open(ctxT(t), store.Config{Driver: "postgres",
		DSN: "postgres://postgres:s3cr3t@127.0.0.1:1/x?sslmode=disable&connect_timeout=5"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestOpenCreatesDataDir(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "data", "croupier.db")
	s, err := store.Open(ctxT(t), store.Config{Driver: "sqlite", DSN: path})
	mustNil(t, err, "open")
	defer s.Close()
	mustNil(t, s.Migrate(ctxT(t)), "migrate")
	if s.Driver() != "sqlite" {
		t.Fatalf("Driver() = %q", s.Driver())
	}
	mustNil(t, s.Ping(ctxT(t)), "ping")
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		// storetest already migrated once; twice more must be no-ops.
		for i := range 2 {
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("migrate run %d: %v", i+2, err)
			}
		}
		cur, latest, err := s.SchemaVersion(ctx)
		mustNil(t, err, "schema version")
		if cur != latest || latest < 1 {
			t.Fatalf("schema version current=%d latest=%d, want equal and >= 1", cur, latest)
		}
		// The schema works after the repeated runs.
		declare(t, s, "g", "e")
	})
}

func TestMigrateHonoursContext(t *testing.T) {
	t.Parallel()
	s, err := store.Open(ctxT(t), store.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "c.db")})
	mustNil(t, err, "open")
	defer s.Close()
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if err := s.Migrate(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate on a cancelled context: got %v, want context.Canceled", err)
	}
}

// TestMigrationParity keeps the two dialects' migration sets in step: same
// file names, so a version added for one database is added for the other.
func TestMigrationParity(t *testing.T) {
	t.Parallel()
	names := func(dir string) []string {
		entries, err := fs.ReadDir(store.MigrationsFS, "migrations/"+dir)
		mustNil(t, err, "read "+dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	lite, pg := names("sqlite"), names("postgres")
	if len(lite) == 0 || !slices.Equal(lite, pg) {
		t.Fatalf("migration files differ: sqlite %v, postgres %v", lite, pg)
	}
}

// TestSchemaParity compares the tables and columns the two dialects create.
func TestSchemaParity(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	lite := storetest.SQLite(t)
	pg := storetest.Postgres(t)

	liteCols := map[string][]string{}
	rows, err := store.DBOf(lite).QueryContext(ctx,
		`SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'goose_db_version'
		 ORDER BY m.name, p.cid`)
	mustNil(t, err, "sqlite columns")
	for rows.Next() {
		var tbl, col string
		mustNil(t, rows.Scan(&tbl, &col), "scan")
		liteCols[tbl] = append(liteCols[tbl], col)
	}
	mustNil(t, rows.Err(), "sqlite columns")
	rows.Close()

	pgCols := map[string][]string{}
	rows, err = store.DBOf(pg).QueryContext(ctx,
		`SELECT table_name, column_name FROM information_schema.columns
		 WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'
		 ORDER BY table_name, ordinal_position`)
	mustNil(t, err, "postgres columns")
	for rows.Next() {
		var tbl, col string
		mustNil(t, rows.Scan(&tbl, &col), "scan")
		pgCols[tbl] = append(pgCols[tbl], col)
	}
	mustNil(t, rows.Err(), "postgres columns")
	rows.Close()

	if len(liteCols) == 0 {
		t.Fatal("no tables found in sqlite")
	}
	for tbl, cols := range liteCols {
		if !slices.Equal(cols, pgCols[tbl]) {
			t.Errorf("table %s: sqlite columns %v, postgres %v", tbl, cols, pgCols[tbl])
		}
	}
	for tbl := range pgCols {
		if _, ok := liteCols[tbl]; !ok {
			t.Errorf("table %s exists only in postgres", tbl)
		}
	}
}

func TestSQLitePragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	s := storetest.SQLite(t, storetest.WithMaxOpenConns(3))
	ctx := ctxT(t)
	db := store.DBOf(s)
	// Hold three connections at once so each pragma is read on distinct ones.
	for i := range 3 {
		conn, err := db.Conn(ctx)
		mustNil(t, err, "conn")
		defer conn.Close()
		checks := []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
			{"busy_timeout", "10000"},
			{"temp_store", "2"}, // MEMORY: no temporary files with rows in them
		}
		for _, c := range checks {
			var got string
			mustNil(t, conn.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got), c.pragma)
			if got != c.want {
				t.Errorf("connection %d: PRAGMA %s = %q, want %q", i, c.pragma, got, c.want)
			}
		}
	}
}

// TestPositionalPlaceholders pins down what the single SQL codebase relies
// on: both drivers bind $N positionally, including a $N used twice.
func TestPositionalPlaceholders(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		var a, b string
		var n int64
		err := store.DBOf(s).QueryRowContext(ctxT(t), `SELECT $2, $1, CAST($3 AS BIGINT) + CAST($3 AS BIGINT)`, "one", "two", int64(20)).Scan(&a, &b, &n)
		mustNil(t, err, "query")
		if a != "two" || b != "one" || n != 40 {
			t.Fatalf("got %q %q %d, want two one 40", a, b, n)
		}
	})
}

func TestContextCancellationPassesThrough(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(ctxT(t))
		cancel()
		_, err := s.Jobs().Get(ctx, "any")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		err = s.Scopes().Declare(ctx, "g", "e")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}
