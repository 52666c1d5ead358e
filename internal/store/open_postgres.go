package store

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens a pgx-backed database/sql pool. pgx caches a prepared
// statement per distinct query text on each connection, so the fixed query
// shapes the store uses are parsed once per connection.
func openPostgres(cfg Config) (*sql.DB, error) {
	if cfg.DSN == "" {
		return nil, errors.New("store: postgres needs a connection URL in the DSN, e.g. postgres://user@127.0.0.1:5432/croupier?sslmode=disable")
	}
	pcfg, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// The parse error can quote the DSN, password included, so none of
		// it is passed on.
		return nil, errors.New("store: the postgres DSN does not parse; expected postgres://user[:password]@host:port/database?sslmode=disable or host=... dbname=... key=value pairs")
	}
	return stdlib.OpenDB(*pcfg), nil
}

// postgresLockID derives the advisory lock id for migrations from the
// database and schema the connection uses: nodes sharing a schema serialise
// their migrations, while unrelated schemas (such as parallel test runs) do
// not wait for each other.
func (s *Store) postgresLockID(ctx context.Context) (int64, error) {
	var dbName, schema sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT current_database(), current_schema()`).Scan(&dbName, &schema); err != nil {
		return 0, wrapErr("read current schema", err)
	}
	if !schema.Valid {
		return 0, errors.New("store: postgres has no current schema: the search_path names no existing schema; create it or fix search_path in the DSN")
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("croupier-migrate\x00" + dbName.String + "\x00" + schema.String))
	return int64(h.Sum64() &^ (1 << 63)), nil
}
