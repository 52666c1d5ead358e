package store

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps statements of hot write paths prepared, so a call does
// not parse and plan the same SQL again. Parsing dominates short statements
// on SQLite (the pure-Go driver compiles each one anew: about a third of an
// audit append), and database/sql re-prepares a *sql.Stmt on each pooled
// connection only once, so a prepared statement costs one prepare per
// connection for the life of the store.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// prepared returns query prepared on the pool, preparing it on first use.
// Call it before beginning a transaction (preparing takes a pooled
// connection, which a transaction must not wait for) and use the statement
// with tx.StmtContext, which reuses the transaction connection's copy.
func (s *Store) prepared(ctx context.Context, op, query string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	st, ok := s.stmts.m[query]
	s.stmts.mu.Unlock()
	if !ok {
		var err error
		if st, err = s.db.PrepareContext(ctx, query); err != nil {
			return nil, dbErr(ctx, op, err)
		}
		s.stmts.mu.Lock()
		if prev, raced := s.stmts.m[query]; raced {
			_ = st.Close()
			st = prev
		} else {
			if s.stmts.m == nil {
				s.stmts.m = map[string]*sql.Stmt{}
			}
			s.stmts.m[query] = st
		}
		s.stmts.mu.Unlock()
	}
	return st, nil
}

// close closes the cached statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close()
		delete(c.m, q)
	}
}
