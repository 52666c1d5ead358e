package store

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/croupier/croupier/internal/secfile"
	"modernc.org/sqlite"
)

// sqliteBusyTimeoutMs is how long a connection waits for the write lock
// before failing with SQLITE_BUSY (mapped to ErrUnavailable). Writers are
// short transactions, so a wait this long means something is stuck.
const sqliteBusyTimeoutMs = 10000

// openSQLite opens the database file cfg.DSN. Every pooled connection gets the
// same settings through the DSN's _pragma parameters, because PRAGMAs other
// than journal_mode are per connection:
//   - journal_mode=WAL: readers never block the writer and vice versa;
//   - synchronous=NORMAL: safe with WAL (a crash may lose the last commits,
//     never corrupts), and far fewer fsyncs than FULL;
//   - foreign_keys=ON: SQLite leaves them off by default; events cascade
//     with their job;
//   - busy_timeout: wait for the write lock instead of failing at once;
//   - _txlock=immediate: transactions take the write lock at BEGIN, so two
//     transactions that read then write cannot deadlock on lock upgrade;
//   - _dqs=0: a misspelt "column" is an error, not a string literal.
func openSQLite(cfg Config) (*sql.DB, error) {
	path := cfg.DSN
	switch {
	case path == "":
		return nil, fmt.Errorf("store: sqlite needs a database file path in the DSN")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("store: sqlite DSN must be a plain file path, got %q (in-memory and URI forms are not supported: every pooled connection must see the same database)", path)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("store: sqlite file path %q must not contain '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory for sqlite database: %w", err)
		}
	}
	// The database holds the token signing key: create it 0600 before
	// SQLite would create it 0644. SQLite gives the -wal and -shm files the
	// mode of the database file.
	if err := secfile.Create(path); err != nil {
		return nil, fmt.Errorf("store: create sqlite database: %w", err)
	}
	secfile.Check(cfg.Logger, sqliteFiles(path)...)
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Temporary tables and indexes and the statement journal of a
	// multi-row INSERT stay in memory: as files they would hold audit rows
	// outside the 0600 database, and the statement journal of the audit
	// flusher's 64-row INSERT spilled to a file opened, written and closed
	// for each statement.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeoutMs))
	q.Set("_txlock", "immediate")
	q.Set("_dqs", "0")
	conn, err := sqlite.NewConnector(path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: sqlite: %w", err)
	}
	return sql.OpenDB(conn), nil
}

// sqliteFiles are the database file and its WAL companions.
func sqliteFiles(path string) []string {
	return []string{path, path + "-wal", path + "-shm"}
}
