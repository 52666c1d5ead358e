package store

import "database/sql"

// DBOf exposes the pool to the black-box tests, which inspect pragmas and the
// schema directly.
func DBOf(s *Store) *sql.DB { return s.db }

// MigrationsFS exposes the embedded migrations for the parity test.
var MigrationsFS = migrationsFS

// EventsPerInsert exposes the chunk size so tests can cross it.
const EventsPerInsert = eventsPerInsert

// PruneJobsBatch exposes the prune batch size so tests can cross it.
const PruneJobsBatch = pruneJobsBatch
