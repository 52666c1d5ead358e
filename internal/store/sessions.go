package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Game server session statuses. TERMINATED and ERROR are terminal.
const (
	GSSActivating  = "ACTIVATING"
	GSSActive      = "ACTIVE"
	GSSTerminating = "TERMINATING"
	GSSTerminated  = "TERMINATED"
	GSSError       = "ERROR"
)

// Player session creation policies.
const (
	PolicyAcceptAll = "ACCEPT_ALL"
	PolicyDenyAll   = "DENY_ALL"
)

// gssTerminalSQL lists the terminal session statuses; constants, never
// input.
const gssTerminalSQL = `('TERMINATED', 'ERROR')`

// GSSEnded reports whether a session status is terminal.
func GSSEnded(status string) bool { return status == GSSTerminated || status == GSSError }

func validGSSStatus(s string) bool {
	switch s {
	case GSSActivating, GSSActive, GSSTerminating, GSSTerminated, GSSError:
		return true
	}
	return false
}

// Fleet-plane sentinels, used with errors.Is like the others.
var (
	// ErrNoCapacity: the fleet has no ready, healthy process without a
	// session.
	ErrNoCapacity = errors.New("no free process")
	// ErrNotOwner: the addressed session or player session exists but
	// belongs to another process or game server session than the caller's.
	ErrNotOwner = errors.New("not owned by the caller")
)

// Property is one game property, kept in the order given.
type Property struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// GameServerSession is the stored state of a game server session.
type GameServerSession struct {
	ID             string
	FleetID        string
	GameID         string
	Env            string
	Name           string
	CreatorID      string
	Status         string
	StatusReason   string
	MaxPlayers     int
	PlayerCount    int // RESERVED + ACTIVE player sessions
	CreationPolicy string
	Properties     []Property
	SessionData    string
	MatchmakerData string
	// IdempotencyToken dedupes creation per fleet; "" for none.
	IdempotencyToken string
	AgentID          string
	ProcessID        string
	IPAddress        string
	DNSName          string
	Port             int
	CustomCount      int
	MaxCustomCount   int
	CreatedAt        time.Time
	// ActivationDeadline is when an ACTIVATING session times out.
	ActivationDeadline time.Time
	ActivatedAt        time.Time
	TerminatedAt       time.Time
	UpdatedAt          time.Time
}

// GameServerSessions stores game server sessions and their placement on
// processes.
type GameServerSessions struct{ s *Store }

// GameServerSessions returns the store of game server sessions.
func (s *Store) GameServerSessions() *GameServerSessions { return &GameServerSessions{s: s} }

const gssColumns = `game_server_session_id, fleet_id, game_id, env, name, creator_id, status, status_reason,
	max_players, player_count, player_session_creation_policy, game_properties, session_data, matchmaker_data,
	idempotency_token, agent_id, process_id, ip_address, dns_name, port, current_custom_count, max_custom_count,
	created_at, activation_deadline, activated_at, terminated_at, updated_at`

// claimRetries bounds how often Place looks for another free process after
// a concurrent placement (another server node) took the one it picked.
const claimRetries = 16

// Place stores g as a new ACTIVATING session on a free process of
// g.FleetID: ACTIVE, healthy and hosting no session, the longest-ready first.
// The process's agent, address and client port are written into the
// session, which is returned.
//
// When g.IdempotencyToken names a session the fleet already has, that
// session is returned with existing=true and nothing is written. With a
// placementID, the PENDING placement is FULFILLED in the same transaction
// (ErrConflict if it is no longer PENDING). ErrNoCapacity when no process is
// free; ErrConflict when g.ID is taken.
func (x *GameServerSessions) Place(ctx context.Context, g *GameServerSession, placementID string) (stored *GameServerSession, existing bool, err error) {
	if g == nil || g.ID == "" || g.FleetID == "" {
		return nil, false, invalid("game server session needs an id and a fleet id")
	}
	if err := checkScope(g.GameID, g.Env); err != nil {
		return nil, false, err
	}
	if g.MaxPlayers < 0 {
		return nil, false, invalid("game server session %q: max players must not be negative", g.ID)
	}
	if g.CreationPolicy == "" {
		g.CreationPolicy = PolicyAcceptAll
	}
	props, err := json.Marshal(nonNilProps(g.Properties))
	if err != nil {
		return nil, false, invalid("game server session %q: properties do not encode", g.ID)
	}
	if g.IdempotencyToken != "" {
		if prev, err := x.byToken(ctx, x.s.db, g.FleetID, g.IdempotencyToken); err == nil {
			return prev, true, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, false, err
		}
	}
	err = x.s.inTx(ctx, "place game server session", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		if err := claimProcess(ctx, tx, g, now); err != nil {
			return err
		}
		stored, err = scanGSS(tx.QueryRowContext(ctx,
			`INSERT INTO game_server_sessions (`+gssColumns+`)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, '', $8, 0, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 0, 0,
			         $19, $20, 0, 0, $19)
			 RETURNING `+gssColumns,
			g.ID, g.FleetID, g.GameID, g.Env, g.Name, g.CreatorID, GSSActivating, g.MaxPlayers,
			g.CreationPolicy, string(props), g.SessionData, g.MatchmakerData, g.IdempotencyToken,
			g.AgentID, g.ProcessID, g.IPAddress, g.DNSName, g.Port, now, timeToMs(g.ActivationDeadline)))
		if err != nil {
			return dbErr(ctx, "place game server session", err)
		}
		if placementID == "" {
			return nil
		}
		res, err := tx.ExecContext(ctx,
			`UPDATE game_server_session_placements SET status = $1, game_server_session_id = $2, ended_at = $3, updated_at = $3
			 WHERE placement_id = $4 AND status = $5`,
			PlacementFulfilled, g.ID, now, placementID, PlacementPending)
		if err != nil {
			return dbErr(ctx, "fulfil placement", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return conflict("placement %q is no longer PENDING", placementID)
		}
		return nil
	})
	if err == nil {
		return stored, false, nil
	}
	if errors.Is(err, ErrConflict) && g.IdempotencyToken != "" {
		// A concurrent request with the same token won the race.
		if prev, perr := x.byToken(ctx, x.s.db, g.FleetID, g.IdempotencyToken); perr == nil {
			return prev, true, nil
		}
	}
	var se *Error
	if errors.As(err, &se) && errors.Is(err, ErrConflict) {
		return nil, false, conflict("game server session id %q is taken", g.ID)
	}
	return nil, false, err
}

// claimProcess marks a free process of g.FleetID as hosting g.ID and copies
// its placement fields into g.
func claimProcess(ctx context.Context, tx *sql.Tx, g *GameServerSession, now int64) error {
	for range claimRetries {
		var id string
		err := tx.QueryRowContext(ctx,
			`SELECT process_id FROM processes
			 WHERE fleet_id = $1 AND status = $2 AND healthy = TRUE AND game_server_session_id = ''
			 ORDER BY ready_at, process_id LIMIT 1`, g.FleetID, ProcessActive).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: fleet %q: %w", g.FleetID, ErrNoCapacity)
		}
		if err != nil {
			return dbErr(ctx, "find free process", err)
		}
		// Re-checked in the UPDATE: on PostgreSQL a concurrent transaction
		// may have claimed the row since the SELECT.
		err = tx.QueryRowContext(ctx,
			`UPDATE processes SET game_server_session_id = $1, updated_at = $2
			 WHERE process_id = $3 AND status = $4 AND healthy = TRUE AND game_server_session_id = ''
			 RETURNING agent_id, ip_address, dns_name, client_port`,
			g.ID, now, id, ProcessActive).Scan(&g.AgentID, &g.IPAddress, &g.DNSName, &g.Port)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return dbErr(ctx, "claim process", err)
		}
		g.ProcessID = id
		return nil
	}
	return fmt.Errorf("store: fleet %q: %w", g.FleetID, ErrNoCapacity)
}

// Get returns one session, or ErrNotFound.
func (x *GameServerSessions) Get(ctx context.Context, id string) (*GameServerSession, error) {
	return getGSSFrom(ctx, x.s.db, id)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getGSSFrom(ctx context.Context, q queryRower, id string) (*GameServerSession, error) {
	g, err := scanGSS(q.QueryRowContext(ctx, `SELECT `+gssColumns+` FROM game_server_sessions WHERE game_server_session_id = $1`, id))
	if err != nil {
		err = dbErr(ctx, "get game server session", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("game server session %q", id)
		}
		return nil, err
	}
	return g, nil
}

func (x *GameServerSessions) byToken(ctx context.Context, q queryRower, fleet, token string) (*GameServerSession, error) {
	g, err := scanGSS(q.QueryRowContext(ctx,
		`SELECT `+gssColumns+` FROM game_server_sessions WHERE fleet_id = $1 AND idempotency_token = $2`, fleet, token))
	if err != nil {
		return nil, dbErr(ctx, "find session by idempotency token", err)
	}
	return g, nil
}

// Activate moves an ACTIVATING session hosted by processID to ACTIVE. A
// positive maxPlayers replaces the session's capacity (the process decides
// it in ActivateGameServerSession). ErrNotFound, ErrNotOwner (another
// process hosts it) or ErrConflict (not ACTIVATING) otherwise.
func (x *GameServerSessions) Activate(ctx context.Context, id, processID string, maxPlayers int) (*GameServerSession, error) {
	now := x.s.nowMs()
	g, err := scanGSS(x.s.db.QueryRowContext(ctx,
		`UPDATE game_server_sessions
		 SET status = $1, activated_at = $2, updated_at = $2,
		     max_players = CASE WHEN $3 > 0 THEN $3 ELSE max_players END
		 WHERE game_server_session_id = $4 AND process_id = $5 AND status = $6
		 RETURNING `+gssColumns,
		GSSActive, now, maxPlayers, id, processID, GSSActivating))
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "activate game server session", err)
	}
	return nil, x.explain(ctx, id, processID, GSSActivating)
}

// explain says why a compare-and-set on session id failed.
func (x *GameServerSessions) explain(ctx context.Context, id, processID string, want ...string) error {
	cur, err := x.Get(ctx, id)
	if err != nil {
		return err
	}
	if processID != "" && cur.ProcessID != processID {
		return notOwner("game server session %q is hosted by another process", id)
	}
	return conflict("game server session %q is %s, not %s", id, cur.Status, strings.Join(want, " or "))
}

func notOwner(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, ErrNotOwner)...)
}

// SetStatus is a compare-and-set between live statuses without side effects
// (ACTIVE -> TERMINATING). It returns the stored session; ErrConflict when
// the session is in none of from.
func (x *GameServerSessions) SetStatus(ctx context.Context, id string, from []string, to, reason string) (*GameServerSession, error) {
	if !validGSSStatus(to) || GSSEnded(to) {
		return nil, invalid("game server session %q: SetStatus cannot set %q; use End", id, to)
	}
	args := []any{to, reason, x.s.nowMs(), id}
	in := inList(&args, from)
	g, err := scanGSS(x.s.db.QueryRowContext(ctx,
		`UPDATE game_server_sessions SET status = $1, status_reason = $2, updated_at = $3
		 WHERE game_server_session_id = $4 AND status IN (`+in+`) RETURNING `+gssColumns, args...))
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "set game server session status", err)
	}
	return nil, x.explain(ctx, id, "", from...)
}

// End moves a session in one of from to the terminal status `to` (TERMINATED
// or ERROR) with a reason, completes its RESERVED and ACTIVE player sessions
// and frees its process for a new session, in one transaction. It returns
// the stored session and whether it changed; a session in none of from is
// returned unchanged with applied=false.
func (x *GameServerSessions) End(ctx context.Context, id string, from []string, to, reason string) (g *GameServerSession, applied bool, err error) {
	if !GSSEnded(to) {
		return nil, false, invalid("game server session %q: %q is not an end status", id, to)
	}
	err = x.s.inTx(ctx, "end game server session", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		args := []any{to, reason, now, id}
		in := inList(&args, from)
		g, err = scanGSS(tx.QueryRowContext(ctx,
			`UPDATE game_server_sessions SET status = $1, status_reason = $2, terminated_at = $3, updated_at = $3, player_count = 0
			 WHERE game_server_session_id = $4 AND status IN (`+in+`) RETURNING `+gssColumns, args...))
		if errors.Is(err, sql.ErrNoRows) {
			g, err = getGSSFrom(ctx, tx, id)
			return err
		}
		if err != nil {
			return dbErr(ctx, "end game server session", err)
		}
		applied = true
		if _, err := tx.ExecContext(ctx,
			`UPDATE player_sessions SET status = $1, terminated_at = $2, updated_at = $2
			 WHERE game_server_session_id = $3 AND status IN ($4, $5)`,
			PlayerCompleted, now, id, PlayerReserved, PlayerActive); err != nil {
			return dbErr(ctx, "complete player sessions", err)
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE processes SET game_server_session_id = '', updated_at = $1
			 WHERE process_id = $2 AND game_server_session_id = $3`, now, g.ProcessID, id); err != nil {
			return dbErr(ctx, "free process", err)
		}
		return nil
	})
	return g, applied, err
}

// GSSUpdate names the attributes Update changes; nil fields stay.
type GSSUpdate struct {
	Name           *string
	MaxPlayers     *int
	CreationPolicy *string
	// ProcessID, when set, restricts the update to a session that process
	// hosts (GSE calls from a game process).
	ProcessID string
}

// Update changes a live session's attributes. MaxPlayers below the current
// player count is ErrConflict. An ended session is ErrConflict.
func (x *GameServerSessions) Update(ctx context.Context, id string, u GSSUpdate) (*GameServerSession, error) {
	args := []any{x.s.nowMs(), id}
	sets := []string{"updated_at = $1"}
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, col+" = $"+strconv.Itoa(len(args)))
	}
	where := "game_server_session_id = $2 AND status NOT IN " + gssTerminalSQL
	if u.Name != nil {
		set("name", *u.Name)
	}
	if u.MaxPlayers != nil {
		if *u.MaxPlayers < 0 {
			return nil, invalid("max players must not be negative")
		}
		set("max_players", *u.MaxPlayers)
		where += " AND player_count <= $" + strconv.Itoa(len(args))
	}
	if u.CreationPolicy != nil {
		if *u.CreationPolicy != PolicyAcceptAll && *u.CreationPolicy != PolicyDenyAll {
			return nil, invalid("player session creation policy %q: use ACCEPT_ALL or DENY_ALL", *u.CreationPolicy)
		}
		set("player_session_creation_policy", *u.CreationPolicy)
	}
	if u.ProcessID != "" {
		args = append(args, u.ProcessID)
		where += " AND process_id = $" + strconv.Itoa(len(args))
	}
	g, err := scanGSS(x.s.db.QueryRowContext(ctx,
		`UPDATE game_server_sessions SET `+strings.Join(sets, ", ")+` WHERE `+where+` RETURNING `+gssColumns, args...))
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "update game server session", err)
	}
	cur, err := x.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case u.ProcessID != "" && cur.ProcessID != u.ProcessID:
		return nil, notOwner("game server session %q is hosted by another process", id)
	case GSSEnded(cur.Status):
		return nil, conflict("game server session %q is %s", id, cur.Status)
	case u.MaxPlayers != nil && cur.PlayerCount > *u.MaxPlayers:
		return nil, conflict("game server session %q has %d player sessions, more than max players %d", id, cur.PlayerCount, *u.MaxPlayers)
	}
	return nil, conflict("game server session %q changed concurrently; retry", id)
}

// GSSFilter selects sessions for List.
type GSSFilter struct {
	FleetID string
	// Statuses, when not empty, keeps sessions in one of them.
	Statuses []string
	// PageSize defaults to 50, capped at 1000 (10000 for ListLive).
	PageSize  int
	PageToken string
}

// List returns the sessions of a fleet newest first (creation time, then
// id) and the token of the next page ("" on the last page).
func (x *GameServerSessions) List(ctx context.Context, f GSSFilter) ([]GameServerSession, string, error) {
	if f.FleetID == "" {
		return nil, "", invalid("listing game server sessions needs a fleet id")
	}
	size := f.PageSize
	if size <= 0 {
		size = 50
	}
	size = min(size, 1000)
	args := []any{f.FleetID}
	where := "fleet_id = $1"
	if len(f.Statuses) > 0 {
		for _, s := range f.Statuses {
			if !validGSSStatus(s) {
				return nil, "", invalid("unknown game server session status %q", s)
			}
		}
		where += " AND status IN (" + inList(&args, f.Statuses) + ")"
	}
	if f.PageToken != "" {
		t, err := decodePageToken(f.PageToken)
		if err != nil {
			return nil, "", invalid("malformed game server sessions page token")
		}
		args = append(args, t.CreatedAt, t.ID)
		where += " AND (created_at, game_server_session_id) < ($" + strconv.Itoa(len(args)-1) + ", $" + strconv.Itoa(len(args)) + ")"
	}
	out, err := x.query(ctx, `SELECT `+gssColumns+` FROM game_server_sessions WHERE `+where+
		` ORDER BY created_at DESC, game_server_session_id DESC LIMIT `+strconv.Itoa(size+1), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		last := out[size-1]
		next = pageToken{CreatedAt: timeToMs(last.CreatedAt), ID: last.ID}.encode()
	}
	return out, next, nil
}

// ListLive returns every ACTIVATING or ACTIVE session of a fleet (up to
// limit, at most 10000), for search.
func (x *GameServerSessions) ListLive(ctx context.Context, fleetID string, limit int) ([]GameServerSession, error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	return x.query(ctx, `SELECT `+gssColumns+` FROM game_server_sessions
		WHERE fleet_id = $1 AND status IN ($2, $3) ORDER BY game_server_session_id LIMIT `+strconv.Itoa(limit),
		fleetID, GSSActivating, GSSActive)
}

// ExpiredActivations returns up to limit sessions still ACTIVATING whose
// activation deadline is at or before now.
func (x *GameServerSessions) ExpiredActivations(ctx context.Context, now time.Time, limit int) ([]GameServerSession, error) {
	return x.query(ctx, `SELECT `+gssColumns+` FROM game_server_sessions
		WHERE status = $1 AND activation_deadline > 0 AND activation_deadline <= $2
		ORDER BY activation_deadline LIMIT `+strconv.Itoa(max(limit, 1)),
		GSSActivating, timeToMs(now))
}

// LiveOnProcess returns the session a process hosts that has not ended, or
// ErrNotFound.
func (x *GameServerSessions) LiveOnProcess(ctx context.Context, processID string) (*GameServerSession, error) {
	out, err := x.query(ctx, `SELECT `+gssColumns+` FROM game_server_sessions
		WHERE process_id = $1 AND status NOT IN `+gssTerminalSQL+` ORDER BY created_at DESC LIMIT 1`, processID)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, notFound("live game server session on process %q", processID)
	}
	return &out[0], nil
}

func (x *GameServerSessions) query(ctx context.Context, q string, args ...any) ([]GameServerSession, error) {
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list game server sessions", err)
	}
	defer rows.Close()
	var out []GameServerSession
	for rows.Next() {
		g, err := scanGSS(rows)
		if err != nil {
			return nil, dbErr(ctx, "list game server sessions", err)
		}
		out = append(out, *g)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list game server sessions", err)
	}
	return out, nil
}

func scanGSS(r rowScanner) (*GameServerSession, error) {
	var g GameServerSession
	var props string
	var created, deadline, activated, terminated, updated int64
	err := r.Scan(&g.ID, &g.FleetID, &g.GameID, &g.Env, &g.Name, &g.CreatorID, &g.Status, &g.StatusReason,
		&g.MaxPlayers, &g.PlayerCount, &g.CreationPolicy, &props, &g.SessionData, &g.MatchmakerData,
		&g.IdempotencyToken, &g.AgentID, &g.ProcessID, &g.IPAddress, &g.DNSName, &g.Port,
		&g.CustomCount, &g.MaxCustomCount, &created, &deadline, &activated, &terminated, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(props), &g.Properties); err != nil {
		return nil, &Error{Op: "decode game properties", cause: err}
	}
	g.CreatedAt, g.ActivationDeadline, g.ActivatedAt = msToTime(created), msToTime(deadline), msToTime(activated)
	g.TerminatedAt, g.UpdatedAt = msToTime(terminated), msToTime(updated)
	return &g, nil
}

// inList appends values to args and returns "$i, $j, ..." for an IN clause.
// An empty list yields a placeholder that matches nothing real.
func inList(args *[]any, values []string) string {
	if len(values) == 0 {
		*args = append(*args, "\x00none")
		return "$" + strconv.Itoa(len(*args))
	}
	ph := make([]string, len(values))
	for i, v := range values {
		*args = append(*args, v)
		ph[i] = "$" + strconv.Itoa(len(*args))
	}
	return strings.Join(ph, ", ")
}

func nonNilProps(p []Property) []Property {
	if p == nil {
		return []Property{}
	}
	return p
}

// Placement statuses. All but PENDING are terminal.
const (
	PlacementPending   = "PENDING"
	PlacementFulfilled = "FULFILLED"
	PlacementCancelled = "CANCELLED"
	PlacementTimedOut  = "TIMED_OUT"
)

// Placement is a queued request for a game server session that waits for a
// free process.
type Placement struct {
	ID             string
	FleetID        string
	GameID         string
	Env            string
	Status         string
	Name           string
	MaxPlayers     int
	Properties     []Property
	SessionData    string
	SessionID      string // once FULFILLED
	TimeoutSeconds int
	CreatedAt      time.Time
	Deadline       time.Time
	EndedAt        time.Time
	UpdatedAt      time.Time
}

const placementColumns = `placement_id, fleet_id, game_id, env, status, name, max_players, game_properties, session_data,
	game_server_session_id, timeout_seconds, created_at, deadline, ended_at, updated_at`

// Placements stores the placement queue.
type Placements struct{ s *Store }

// Placements returns the store of game server session placements.
func (s *Store) Placements() *Placements { return &Placements{s: s} }

// Create queues p as PENDING with a deadline TimeoutSeconds from now. When
// p.ID exists already, the stored placement is returned with existing=true
// (a retried request). maxPending bounds the PENDING placements of the
// fleet: beyond it Create is ErrConflict.
func (x *Placements) Create(ctx context.Context, p *Placement, maxPending int) (stored *Placement, existing bool, err error) {
	if p == nil || p.ID == "" || p.FleetID == "" {
		return nil, false, invalid("placement needs an id and a fleet id")
	}
	if err := checkScope(p.GameID, p.Env); err != nil {
		return nil, false, err
	}
	if p.TimeoutSeconds <= 0 {
		return nil, false, invalid("placement %q needs a positive timeout", p.ID)
	}
	props, err := json.Marshal(nonNilProps(p.Properties))
	if err != nil {
		return nil, false, invalid("placement %q: properties do not encode", p.ID)
	}
	if prev, err := x.Get(ctx, p.ID); err == nil {
		return prev, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	err = x.s.inTx(ctx, "create placement", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM game_server_session_placements WHERE status = $1 AND fleet_id = $2`,
			PlacementPending, p.FleetID).Scan(&n); err != nil {
			return dbErr(ctx, "count pending placements", err)
		}
		if maxPending > 0 && n >= maxPending {
			return conflict("fleet %q already has %d pending placements, the most it queues", p.FleetID, n)
		}
		now := x.s.nowMs()
		stored, err = scanPlacement(tx.QueryRowContext(ctx,
			`INSERT INTO game_server_session_placements (`+placementColumns+`)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $11, $12, 0, $11)
			 RETURNING `+placementColumns,
			p.ID, p.FleetID, p.GameID, p.Env, PlacementPending, p.Name, p.MaxPlayers, string(props), p.SessionData,
			p.TimeoutSeconds, now, now+int64(p.TimeoutSeconds)*1000))
		if err != nil {
			err = dbErr(ctx, "create placement", err)
			if errors.Is(err, ErrNotFound) {
				return notFound("fleet %q", p.FleetID)
			}
		}
		return err
	})
	if errors.Is(err, ErrConflict) {
		if prev, gerr := x.Get(ctx, p.ID); gerr == nil {
			return prev, true, nil
		}
	}
	if err != nil {
		return nil, false, err
	}
	return stored, false, nil
}

// Get returns one placement, or ErrNotFound.
func (x *Placements) Get(ctx context.Context, id string) (*Placement, error) {
	p, err := scanPlacement(x.s.db.QueryRowContext(ctx,
		`SELECT `+placementColumns+` FROM game_server_session_placements WHERE placement_id = $1`, id))
	if err != nil {
		err = dbErr(ctx, "get placement", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("placement %q", id)
		}
		return nil, err
	}
	return p, nil
}

// End moves a PENDING placement to CANCELLED or TIMED_OUT and returns it,
// with applied=false (and the stored placement) when it was not PENDING.
func (x *Placements) End(ctx context.Context, id, to string) (p *Placement, applied bool, err error) {
	if to != PlacementCancelled && to != PlacementTimedOut {
		return nil, false, invalid("placement %q: cannot end as %q", id, to)
	}
	now := x.s.nowMs()
	p, err = scanPlacement(x.s.db.QueryRowContext(ctx,
		`UPDATE game_server_session_placements SET status = $1, ended_at = $2, updated_at = $2
		 WHERE placement_id = $3 AND status = $4 RETURNING `+placementColumns, to, now, id, PlacementPending))
	if err == nil {
		return p, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, dbErr(ctx, "end placement", err)
	}
	p, err = x.Get(ctx, id)
	return p, false, err
}

// Pending returns up to limit PENDING placements, oldest first; with a
// fleetID only that fleet's.
func (x *Placements) Pending(ctx context.Context, fleetID string, limit int) ([]Placement, error) {
	q := `SELECT ` + placementColumns + ` FROM game_server_session_placements WHERE status = $1`
	args := []any{PlacementPending}
	if fleetID != "" {
		q += ` AND fleet_id = $2`
		args = append(args, fleetID)
	}
	q += ` ORDER BY created_at, placement_id LIMIT ` + strconv.Itoa(max(limit, 1))
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list pending placements", err)
	}
	defer rows.Close()
	var out []Placement
	for rows.Next() {
		p, err := scanPlacement(rows)
		if err != nil {
			return nil, dbErr(ctx, "list pending placements", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "list pending placements", err)
	}
	return out, nil
}

func scanPlacement(r rowScanner) (*Placement, error) {
	var p Placement
	var props string
	var created, deadline, ended, updated int64
	err := r.Scan(&p.ID, &p.FleetID, &p.GameID, &p.Env, &p.Status, &p.Name, &p.MaxPlayers, &props, &p.SessionData,
		&p.SessionID, &p.TimeoutSeconds, &created, &deadline, &ended, &updated)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(props), &p.Properties); err != nil {
		return nil, &Error{Op: "decode placement properties", cause: err}
	}
	p.CreatedAt, p.Deadline, p.EndedAt, p.UpdatedAt = msToTime(created), msToTime(deadline), msToTime(ended), msToTime(updated)
	return &p, nil
}
