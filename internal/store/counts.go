package store

import (
	"context"
	"fmt"
)

// StatusCounted names a table whose rows CountByStatus can count: jobs,
// fleet processes and game-server sessions. The metrics scrape reads them.
type StatusCounted string

// The tables CountByStatus accepts (a fixed list: the name goes into SQL).
const (
	CountJobs      StatusCounted = "jobs"
	CountProcesses StatusCounted = "processes"
	CountSessions  StatusCounted = "game_server_sessions"
)

// CountByStatus returns how many rows of table are in each status.
func (s *Store) CountByStatus(ctx context.Context, table StatusCounted) (map[string]int64, error) {
	switch table {
	case CountJobs, CountProcesses, CountSessions:
	default:
		return nil, fmt.Errorf("store: count by status: unknown table %q: %w", table, ErrInvalidArgument)
	}
	op := "count " + string(table) + " by status"
	rows, err := s.db.QueryContext(ctx, "SELECT status, COUNT(*) FROM "+string(table)+" GROUP BY status")
	if err != nil {
		return nil, dbErr(ctx, op, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, dbErr(ctx, op, err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, op, err)
	}
	return out, nil
}
