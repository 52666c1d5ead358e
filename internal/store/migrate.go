package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationsFS holds one directory of goose SQL migrations per dialect. Both
// directories carry the same versions with the same tables and columns
// (TestMigrationParity checks); they differ only in types and table options.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationsFS embed.FS

// migrationLockTimeoutSeconds bounds how long Migrate waits for another node
// that is migrating the same PostgreSQL schema.
const migrationLockTimeoutSeconds = 300

// Migrate applies every embedded migration not yet applied (goose "up"). It
// is idempotent, and on PostgreSQL safe to run from several nodes at once: a
// session advisory lock per database+schema serialises them.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.migrationProvider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("store: migrate: %w", ctx.Err())
		}
		// goose's error names the failing file and statement; it stays in the
		// chain for logs but not in the message.
		return &Error{Op: "migrate", cause: err}
	}
	for _, r := range results {
		s.logger.InfoContext(ctx, "applied migration", "driver", s.driver,
			"version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// SchemaVersion returns the newest applied migration version and the newest
// embedded one; a server refuses to start on a schema newer than it knows.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.migrationProvider()
	if err != nil {
		return 0, 0, err
	}
	current, latest, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, dbErr(ctx, "read schema version", err)
	}
	return current, latest, nil
}

func (s *Store) migrationProvider() (*goose.Provider, error) {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(s.logger),
	}
	if s.driver == DriverPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(s.pgLockID),
			lock.WithLockTimeout(1, migrationLockTimeoutSeconds),
		)
		if err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	dir, err := fs.Sub(migrationsFS, "migrations/"+s.driver)
	if err != nil {
		return nil, fmt.Errorf("store: migrations for %s: %w", s.driver, err)
	}
	p, err := goose.NewProvider(dialect, s.db, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations for %s: %w", s.driver, err)
	}
	return p, nil
}
