package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Process statuses. TERMINATED and CRASHED are terminal.
const (
	ProcessLaunching   = "LAUNCHING"
	ProcessActive      = "ACTIVE"
	ProcessTerminating = "TERMINATING"
	ProcessTerminated  = "TERMINATED"
	ProcessCrashed     = "CRASHED"
)

// processTerminalSQL lists the terminal process statuses; constants, never
// input.
const processTerminalSQL = `('TERMINATED', 'CRASHED')`

// ProcessEnded reports whether a process status is terminal.
func ProcessEnded(status string) bool { return status == ProcessTerminated || status == ProcessCrashed }

func validProcessStatus(s string) bool {
	switch s {
	case ProcessLaunching, ProcessActive, ProcessTerminating, ProcessTerminated, ProcessCrashed:
		return true
	}
	return false
}

// Process is a game-server process as its agent reported it, plus the
// session the server placed on it.
type Process struct {
	ID         string
	AgentID    string
	FleetID    string
	GameID     string
	Env        string
	PID        int
	Status     string
	Healthy    bool
	IPAddress  string
	DNSName    string
	ClientPort int
	GRPCPort   int
	LogPaths   []string
	// GameServerSessionID is written by the server only (placement, session
	// end); Upsert leaves it alone.
	GameServerSessionID string
	CustomCount         int
	MaxCustomCount      int
	LaunchPath          string
	StatusReason        string
	StartedAt           time.Time
	ReadyAt             time.Time
	EndedAt             time.Time
	UpdatedAt           time.Time
}

// Processes stores the processes agents report.
type Processes struct{ s *Store }

// Processes returns the store of agent-reported processes.
func (s *Store) Processes() *Processes { return &Processes{s: s} }

const processColumns = `process_id, agent_id, fleet_id, game_id, env, pid, status, healthy, ip_address, dns_name,
	client_port, grpc_port, log_paths, game_server_session_id, current_custom_count, max_custom_count,
	launch_path, status_reason, started_at, ready_at, ended_at, updated_at`

// Upsert creates p or updates the agent-reported fields of the stored
// process, and returns the stored row. Status only moves forward (LAUNCHING,
// ACTIVE, TERMINATING, then an end status) and healthy only from true to
// false: a report that raced with MarkTerminating, or arrived out of order,
// cannot revive a process, and an ended process is not changed at all. A
// process id owned by another agent is ErrConflict.
func (x *Processes) Upsert(ctx context.Context, p *Process) (*Process, error) {
	if p == nil || p.ID == "" || p.AgentID == "" || p.FleetID == "" {
		return nil, invalid("process needs an id, an agent id and a fleet id")
	}
	if err := checkScope(p.GameID, p.Env); err != nil {
		return nil, err
	}
	if !validProcessStatus(p.Status) {
		return nil, invalid("process %q: unknown status %q", p.ID, p.Status)
	}
	paths, err := json.Marshal(nonNilStrings(p.LogPaths))
	if err != nil {
		return nil, invalid("process %q: log paths do not encode", p.ID)
	}
	row := x.s.db.QueryRowContext(ctx,
		`INSERT INTO processes (`+processColumns+`)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, '', 0, 0, $14, $15, $16, $17, $18, $19)
		 ON CONFLICT (process_id) DO UPDATE SET
		   fleet_id = excluded.fleet_id, game_id = excluded.game_id, env = excluded.env, pid = excluded.pid,
		   status = CASE WHEN `+processRankSQL("excluded.status")+` >= `+processRankSQL("processes.status")+`
		                 THEN excluded.status ELSE processes.status END,
		   healthy = (processes.healthy AND excluded.healthy), ip_address = excluded.ip_address,
		   dns_name = excluded.dns_name, client_port = excluded.client_port, grpc_port = excluded.grpc_port,
		   log_paths = excluded.log_paths, launch_path = excluded.launch_path,
		   status_reason = excluded.status_reason, started_at = excluded.started_at,
		   ready_at = excluded.ready_at, ended_at = excluded.ended_at, updated_at = excluded.updated_at
		 WHERE processes.agent_id = excluded.agent_id AND processes.status NOT IN `+processTerminalSQL+`
		 RETURNING `+processColumns,
		p.ID, p.AgentID, p.FleetID, p.GameID, p.Env, p.PID, p.Status, p.Healthy, p.IPAddress, p.DNSName,
		p.ClientPort, p.GRPCPort, string(paths), p.LaunchPath, p.StatusReason,
		timeToMs(p.StartedAt), timeToMs(p.ReadyAt), timeToMs(p.EndedAt), x.s.nowMs())
	got, err := scanProcess(row)
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "upsert process", err)
	}
	// The update's condition refused: tell which.
	cur, err := x.Get(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if cur.AgentID != p.AgentID {
		return nil, conflict("process %q belongs to agent %q, not %q", p.ID, cur.AgentID, p.AgentID)
	}
	return cur, nil
}

// Get returns one process, or ErrNotFound.
func (x *Processes) Get(ctx context.Context, id string) (*Process, error) {
	p, err := scanProcess(x.s.db.QueryRowContext(ctx, `SELECT `+processColumns+` FROM processes WHERE process_id = $1`, id))
	if err != nil {
		err = dbErr(ctx, "get process", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("process %q", id)
		}
		return nil, err
	}
	return p, nil
}

// ProcessFilter selects processes for List; empty fields match everything.
type ProcessFilter struct {
	FleetID string
	AgentID string
	Status  string
	// Live excludes TERMINATED and CRASHED processes.
	Live bool
	// Limit caps the result (default and maximum 10000).
	Limit int
}

// List returns matching processes ordered by fleet, then id.
func (x *Processes) List(ctx context.Context, f ProcessFilter) ([]Process, error) {
	var conds []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		conds = append(conds, col+" = $"+strconv.Itoa(len(args)))
	}
	if f.FleetID != "" {
		add("fleet_id", f.FleetID)
	}
	if f.AgentID != "" {
		add("agent_id", f.AgentID)
	}
	if f.Status != "" {
		if !validProcessStatus(f.Status) {
			return nil, invalid("unknown process status %q", f.Status)
		}
		add("status", f.Status)
	}
	if f.Live {
		conds = append(conds, "status NOT IN "+processTerminalSQL)
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	q := `SELECT ` + processColumns + ` FROM processes`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	q += ` ORDER BY fleet_id, process_id LIMIT ` + strconv.Itoa(limit)
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list processes", err)
	}
	defer rows.Close()
	var out []Process
	for rows.Next() {
		p, err := scanProcess(rows)
		if err != nil {
			return nil, dbErr(ctx, "list processes", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list processes", err)
	}
	return out, nil
}

// processRankSQL orders process statuses for the forward-only rule of
// Upsert; col is a column reference, never input.
func processRankSQL(col string) string {
	return `(CASE ` + col + ` WHEN 'LAUNCHING' THEN 0 WHEN 'ACTIVE' THEN 1 WHEN 'TERMINATING' THEN 2 ELSE 3 END)`
}

// MarkTerminating moves a LAUNCHING or ACTIVE process to TERMINATING, so no
// session is placed on it while its agent ends it. It returns the stored
// row; a process already terminating or ended is returned unchanged.
func (x *Processes) MarkTerminating(ctx context.Context, id, reason string) (*Process, error) {
	p, err := scanProcess(x.s.db.QueryRowContext(ctx,
		`UPDATE processes SET status = $1, status_reason = $2, updated_at = $3
		 WHERE process_id = $4 AND status IN ($5, $6) RETURNING `+processColumns,
		ProcessTerminating, reason, x.s.nowMs(), id, ProcessLaunching, ProcessActive))
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "mark process terminating", err)
	}
	return x.Get(ctx, id)
}

// MarkEnded moves a live process to a terminal status (TERMINATED or
// CRASHED) with a reason, and returns the stored row. A process that had
// already ended is returned unchanged.
func (x *Processes) MarkEnded(ctx context.Context, id, status, reason string) (*Process, error) {
	if !ProcessEnded(status) {
		return nil, invalid("process %q: %q is not an end status", id, status)
	}
	now := x.s.nowMs()
	p, err := scanProcess(x.s.db.QueryRowContext(ctx,
		`UPDATE processes SET status = $1, status_reason = $2, ended_at = $3, updated_at = $3
		 WHERE process_id = $4 AND status NOT IN `+processTerminalSQL+` RETURNING `+processColumns,
		status, reason, now, id))
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "end process", err)
	}
	return x.Get(ctx, id)
}

// SetCustomData records a process's ReportCustomData, on the process and on
// the live session it hosts.
func (x *Processes) SetCustomData(ctx context.Context, id string, current, maximum int) error {
	return x.s.inTx(ctx, "set custom data", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		var gss string
		err := tx.QueryRowContext(ctx,
			`UPDATE processes SET current_custom_count = $1, max_custom_count = $2, updated_at = $3
			 WHERE process_id = $4 RETURNING game_server_session_id`, current, maximum, now, id).Scan(&gss)
		if err != nil {
			err = dbErr(ctx, "set custom data", err)
			if errors.Is(err, ErrNotFound) {
				return notFound("process %q", id)
			}
			return err
		}
		if gss == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE game_server_sessions SET current_custom_count = $1, max_custom_count = $2, updated_at = $3
			 WHERE game_server_session_id = $4`, current, maximum, now, gss)
		return dbErr(ctx, "set custom data", err)
	})
}

func scanProcess(r rowScanner) (*Process, error) {
	var p Process
	var paths string
	var started, ready, ended, updated int64
	err := r.Scan(&p.ID, &p.AgentID, &p.FleetID, &p.GameID, &p.Env, &p.PID, &p.Status, &p.Healthy,
		&p.IPAddress, &p.DNSName, &p.ClientPort, &p.GRPCPort, &paths, &p.GameServerSessionID,
		&p.CustomCount, &p.MaxCustomCount, &p.LaunchPath, &p.StatusReason, &started, &ready, &ended, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(paths), &p.LogPaths); err != nil {
		return nil, &Error{Op: "decode process log paths", cause: err}
	}
	p.StartedAt, p.ReadyAt, p.EndedAt, p.UpdatedAt = msToTime(started), msToTime(ready), msToTime(ended), msToTime(updated)
	return &p, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
