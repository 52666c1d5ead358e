package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Player session statuses. COMPLETED and TIMEDOUT are terminal.
const (
	PlayerReserved  = "RESERVED"
	PlayerActive    = "ACTIVE"
	PlayerCompleted = "COMPLETED"
	PlayerTimedOut  = "TIMEDOUT"
)

// ValidPlayerStatus reports whether s is a player session status.
func ValidPlayerStatus(s string) bool {
	switch s {
	case PlayerReserved, PlayerActive, PlayerCompleted, PlayerTimedOut:
		return true
	}
	return false
}

// Reasons a join is refused (JoinRefusedError.Reason).
const (
	JoinNotActive = "NOT_ACTIVE" // the session is not ACTIVE
	JoinDenied    = "DENY_ALL"   // its creation policy is DENY_ALL
	JoinFull      = "FULL"       // no free player slot
)

// JoinRefusedError says why Join reserved nothing. It wraps ErrConflict.
type JoinRefusedError struct {
	SessionID  string
	Reason     string // JoinNotActive, JoinDenied or JoinFull
	Status     string
	Players    int // RESERVED + ACTIVE when refused
	MaxPlayers int
	Requested  int
}

func (e *JoinRefusedError) Error() string {
	switch e.Reason {
	case JoinNotActive:
		return fmt.Sprintf("store: game server session %q is %s, not ACTIVE: %v", e.SessionID, e.Status, ErrConflict)
	case JoinDenied:
		return fmt.Sprintf("store: game server session %q does not accept players (policy DENY_ALL): %v", e.SessionID, ErrConflict)
	}
	return fmt.Sprintf("store: game server session %q is full (%d of %d player slots taken, %d requested): %v",
		e.SessionID, e.Players, e.MaxPlayers, e.Requested, ErrConflict)
}

func (e *JoinRefusedError) Unwrap() error { return ErrConflict }

// PlayerSession is the stored state of a player session.
type PlayerSession struct {
	ID                  string
	GameServerSessionID string
	FleetID             string
	GameID              string
	Env                 string
	PlayerID            string
	PlayerData          string
	Status              string
	IPAddress           string
	DNSName             string
	Port                int
	CreatedAt           time.Time
	// ReservedUntil is when a RESERVED player session times out.
	ReservedUntil time.Time
	TerminatedAt  time.Time
	UpdatedAt     time.Time
}

// PlayerJoin is one player of a Join: the caller picks the player session id.
type PlayerJoin struct {
	PlayerSessionID string
	PlayerID        string
	PlayerData      string
}

// PlayerSessions stores player sessions.
type PlayerSessions struct{ s *Store }

// PlayerSessions returns the store of player sessions.
func (s *Store) PlayerSessions() *PlayerSessions { return &PlayerSessions{s: s} }

const playerColumns = `player_session_id, game_server_session_id, fleet_id, game_id, env, player_id, player_data,
	status, ip_address, dns_name, port, created_at, reserved_until, terminated_at, updated_at`

// Join reserves a slot for every player in joins in game server session
// gssID, all or none, as RESERVED player sessions that time out at
// reservedUntil. The session must be ACTIVE with policy ACCEPT_ALL and room
// for all of them; otherwise a *JoinRefusedError (ErrConflict). A player
// that already holds a RESERVED or ACTIVE seat in the session is
// ErrConflict; an unknown session ErrNotFound.
func (x *PlayerSessions) Join(ctx context.Context, gssID string, joins []PlayerJoin, reservedUntil time.Time) ([]PlayerSession, error) {
	if gssID == "" || len(joins) == 0 {
		return nil, invalid("join needs a game server session id and at least one player")
	}
	seen := make(map[string]bool, len(joins))
	for _, j := range joins {
		if j.PlayerSessionID == "" || j.PlayerID == "" {
			return nil, invalid("every player of a join needs a player id and a player session id")
		}
		if seen[j.PlayerID] {
			return nil, invalid("player %q is listed twice", j.PlayerID)
		}
		seen[j.PlayerID] = true
	}
	n := len(joins)
	var out []PlayerSession
	err := x.s.inTx(ctx, "join game server session", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		// The capacity check and the count are one statement, so concurrent
		// joins (on any server node) never overfill a session.
		g, err := scanGSS(tx.QueryRowContext(ctx,
			`UPDATE game_server_sessions SET player_count = player_count + $1, updated_at = $2
			 WHERE game_server_session_id = $3 AND status = $4 AND player_session_creation_policy = $5
			   AND player_count + $1 <= max_players
			 RETURNING `+gssColumns,
			n, now, gssID, GSSActive, PolicyAcceptAll))
		if errors.Is(err, sql.ErrNoRows) {
			cur, gerr := getGSSFrom(ctx, tx, gssID)
			if gerr != nil {
				return gerr
			}
			refused := &JoinRefusedError{SessionID: gssID, Status: cur.Status, Players: cur.PlayerCount, MaxPlayers: cur.MaxPlayers, Requested: n}
			switch {
			case cur.Status != GSSActive:
				refused.Reason = JoinNotActive
			case cur.CreationPolicy != PolicyAcceptAll:
				refused.Reason = JoinDenied
			default:
				refused.Reason = JoinFull
			}
			return refused
		}
		if err != nil {
			return dbErr(ctx, "join game server session", err)
		}
		out = make([]PlayerSession, 0, n)
		for _, j := range joins {
			ps, err := scanPlayer(tx.QueryRowContext(ctx,
				`INSERT INTO player_sessions (`+playerColumns+`)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $12)
				 RETURNING `+playerColumns,
				j.PlayerSessionID, gssID, g.FleetID, g.GameID, g.Env, j.PlayerID, j.PlayerData, PlayerReserved,
				g.IPAddress, g.DNSName, g.Port, now, timeToMs(reservedUntil)))
			if err != nil {
				err = dbErr(ctx, "reserve player session", err)
				if errors.Is(err, ErrConflict) {
					return conflict("player %q already has a live player session in game server session %q (or player session id %q is taken)",
						j.PlayerID, gssID, j.PlayerSessionID)
				}
				return err
			}
			out = append(out, *ps)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Accept moves a RESERVED player session of game server session gssID to
// ACTIVE. With a processID, the session must be ACTIVE on that process.
// ErrNotFound for an unknown player session, ErrNotOwner when it belongs to
// another game server session (or the session to another process),
// ErrConflict when it is not RESERVED.
func (x *PlayerSessions) Accept(ctx context.Context, gssID, psID, processID string) (*PlayerSession, error) {
	args := []any{PlayerActive, x.s.nowMs(), psID, gssID, PlayerReserved, GSSActive}
	hosted := ""
	if processID != "" {
		args = append(args, processID)
		hosted = " AND g.process_id = $7"
	}
	ps, err := scanPlayer(x.s.db.QueryRowContext(ctx,
		`UPDATE player_sessions SET status = $1, updated_at = $2
		 WHERE player_session_id = $3 AND game_server_session_id = $4 AND status = $5
		   AND EXISTS (SELECT 1 FROM game_server_sessions g
		               WHERE g.game_server_session_id = $4 AND g.status = $6`+hosted+`)
		 RETURNING `+playerColumns, args...))
	if err == nil {
		return ps, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, dbErr(ctx, "accept player session", err)
	}
	return nil, x.explain(ctx, gssID, psID, processID, []string{PlayerReserved}, true)
}

// Remove moves a RESERVED or ACTIVE player session of gssID to COMPLETED and
// frees its slot. With a processID, the session must be hosted by that
// process. Errors as Accept.
func (x *PlayerSessions) Remove(ctx context.Context, gssID, psID, processID string) (*PlayerSession, error) {
	var ps *PlayerSession
	err := x.s.inTx(ctx, "remove player session", func(tx *sql.Tx) error {
		now := x.s.nowMs()
		args := []any{PlayerCompleted, now, psID, gssID, PlayerReserved, PlayerActive}
		hosted := ""
		if processID != "" {
			args = append(args, processID)
			hosted = " AND EXISTS (SELECT 1 FROM game_server_sessions g WHERE g.game_server_session_id = $4 AND g.process_id = $7)"
		}
		var err error
		ps, err = scanPlayer(tx.QueryRowContext(ctx,
			`UPDATE player_sessions SET status = $1, terminated_at = $2, updated_at = $2
			 WHERE player_session_id = $3 AND game_server_session_id = $4 AND status IN ($5, $6)`+hosted+`
			 RETURNING `+playerColumns, args...))
		if err != nil {
			return err
		}
		return freeSlot(ctx, tx, gssID, now)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, x.explain(ctx, gssID, psID, processID, []string{PlayerReserved, PlayerActive}, false)
	case err != nil:
		return nil, dbErr(ctx, "remove player session", err)
	}
	return ps, nil
}

// freeSlot gives one player slot of a session back.
func freeSlot(ctx context.Context, tx *sql.Tx, gssID string, now int64) error {
	_, err := tx.ExecContext(ctx,
		`UPDATE game_server_sessions SET player_count = player_count - 1, updated_at = $1
		 WHERE game_server_session_id = $2 AND player_count > 0`, now, gssID)
	return dbErr(ctx, "free player slot", err)
}

// explain says why a compare-and-set on a player session failed.
func (x *PlayerSessions) explain(ctx context.Context, gssID, psID, processID string, want []string, needActive bool) error {
	ps, err := x.Get(ctx, psID)
	if err != nil {
		return err
	}
	if ps.GameServerSessionID != gssID {
		return notOwner("player session %q belongs to another game server session", psID)
	}
	g, err := x.s.GameServerSessions().Get(ctx, gssID)
	if err != nil {
		return err
	}
	if processID != "" && g.ProcessID != processID {
		return notOwner("game server session %q is hosted by another process", gssID)
	}
	if needActive && g.Status != GSSActive {
		return conflict("game server session %q is %s, not ACTIVE", gssID, g.Status)
	}
	return conflict("player session %q is %s, not %s", psID, ps.Status, strings.Join(want, " or "))
}

// Get returns one player session, or ErrNotFound.
func (x *PlayerSessions) Get(ctx context.Context, id string) (*PlayerSession, error) {
	ps, err := scanPlayer(x.s.db.QueryRowContext(ctx, `SELECT `+playerColumns+` FROM player_sessions WHERE player_session_id = $1`, id))
	if err != nil {
		err = dbErr(ctx, "get player session", err)
		if errors.Is(err, ErrNotFound) {
			return nil, notFound("player session %q", id)
		}
		return nil, err
	}
	return ps, nil
}

// ExpireReservations times out up to limit RESERVED player sessions whose
// reservation ended at or before now, freeing their slots. It returns the
// player sessions it timed out.
func (x *PlayerSessions) ExpireReservations(ctx context.Context, now time.Time, limit int) ([]PlayerSession, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT player_session_id FROM player_sessions
		 WHERE status = $1 AND reserved_until > 0 AND reserved_until <= $2
		 ORDER BY reserved_until LIMIT `+strconv.Itoa(max(limit, 1)), PlayerReserved, timeToMs(now))
	if err != nil {
		return nil, dbErr(ctx, "find expired reservations", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, dbErr(ctx, "find expired reservations", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "find expired reservations", err)
	}
	var out []PlayerSession
	for _, id := range ids {
		// One transaction each: the CAS makes a concurrent accept (or another
		// node's sweep) win cleanly, and the slot is freed exactly once.
		err := x.s.inTx(ctx, "time out reservation", func(tx *sql.Tx) error {
			ms := x.s.nowMs()
			ps, err := scanPlayer(tx.QueryRowContext(ctx,
				`UPDATE player_sessions SET status = $1, terminated_at = $2, updated_at = $2
				 WHERE player_session_id = $3 AND status = $4 RETURNING `+playerColumns,
				PlayerTimedOut, ms, id, PlayerReserved))
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return dbErr(ctx, "time out reservation", err)
			}
			out = append(out, *ps)
			return freeSlot(ctx, tx, ps.GameServerSessionID, ms)
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// PlayerSessionFilter selects player sessions for List. At least one of
// GameServerSessionID, PlayerID and PlayerSessionID is required.
type PlayerSessionFilter struct {
	GameServerSessionID string
	PlayerID            string
	PlayerSessionID     string
	Status              string
	// FleetID, when set, restricts the result to one fleet.
	FleetID string
	// PageSize defaults to 50, capped at 1000.
	PageSize  int
	PageToken string
}

// List returns matching player sessions oldest first (creation time, then
// id) and the token of the next page ("" on the last page).
func (x *PlayerSessions) List(ctx context.Context, f PlayerSessionFilter) ([]PlayerSession, string, error) {
	if f.GameServerSessionID == "" && f.PlayerID == "" && f.PlayerSessionID == "" {
		return nil, "", invalid("name a game server session id, a player id or a player session id")
	}
	if f.Status != "" && !ValidPlayerStatus(f.Status) {
		return nil, "", invalid("unknown player session status %q: use RESERVED, ACTIVE, COMPLETED or TIMEDOUT", f.Status)
	}
	size := f.PageSize
	if size <= 0 {
		size = 50
	}
	size = min(size, 1000)
	var conds []string
	var args []any
	add := func(col string, v any) {
		args = append(args, v)
		conds = append(conds, col+" = $"+strconv.Itoa(len(args)))
	}
	if f.GameServerSessionID != "" {
		add("game_server_session_id", f.GameServerSessionID)
	}
	if f.PlayerID != "" {
		add("player_id", f.PlayerID)
	}
	if f.PlayerSessionID != "" {
		add("player_session_id", f.PlayerSessionID)
	}
	if f.Status != "" {
		add("status", f.Status)
	}
	if f.FleetID != "" {
		add("fleet_id", f.FleetID)
	}
	if f.PageToken != "" {
		t, err := decodePageToken(f.PageToken)
		if err != nil {
			return nil, "", invalid("malformed player sessions page token")
		}
		args = append(args, t.CreatedAt, t.ID)
		conds = append(conds, "(created_at, player_session_id) > ($"+strconv.Itoa(len(args)-1)+", $"+strconv.Itoa(len(args))+")")
	}
	rows, err := x.s.db.QueryContext(ctx, `SELECT `+playerColumns+` FROM player_sessions WHERE `+strings.Join(conds, " AND ")+
		` ORDER BY created_at, player_session_id LIMIT `+strconv.Itoa(size+1), args...)
	if err != nil {
		return nil, "", dbErr(ctx, "list player sessions", err)
	}
	defer rows.Close()
	var out []PlayerSession
	for rows.Next() {
		ps, err := scanPlayer(rows)
		if err != nil {
			return nil, "", dbErr(ctx, "list player sessions", err)
		}
		out = append(out, *ps)
	}
	if err := rows.Err(); err != nil {
		return nil, "", dbErr(ctx, "list player sessions", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		last := out[size-1]
		next = pageToken{CreatedAt: timeToMs(last.CreatedAt), ID: last.ID}.encode()
	}
	return out, next, nil
}

func scanPlayer(r rowScanner) (*PlayerSession, error) {
	var p PlayerSession
	var created, until, terminated, updated int64
	err := r.Scan(&p.ID, &p.GameServerSessionID, &p.FleetID, &p.GameID, &p.Env, &p.PlayerID, &p.PlayerData,
		&p.Status, &p.IPAddress, &p.DNSName, &p.Port, &created, &until, &terminated, &updated)
	if err != nil {
		return nil, err
	}
	p.CreatedAt, p.ReservedUntil, p.TerminatedAt, p.UpdatedAt = msToTime(created), msToTime(until), msToTime(terminated), msToTime(updated)
	return &p, nil
}
