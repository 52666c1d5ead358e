package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The rooms system's rows (docs/rooms.md). Roles, statuses, permissions and
// movie types are the numbers of the synctv.client enums; internal/rooms
// gives them meaning.

// RoomUser is a player account or a guest; separate from operators (User).
type RoomUser struct {
	ID       string
	Username string
	Email    string
	// PasswordHash is argon2id in PHC form; empty for guests.
	PasswordHash string
	Guest        bool
	// GuestRoomID is the one room a guest may use.
	GuestRoomID string
	// GuestAddr is where a guest joined from (write-only: GuestPrecedents
	// reads it).
	GuestAddr string
	CreatedAt time.Time
}

// RoomSession is one player login (or guest token): the family of its
// refresh tokens.
type RoomSession struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// PlaybackState is a room's authoritative playback state.
type PlaybackState struct {
	MovieID   string
	Playing   bool
	Position  float64
	Rate      float64
	UpdatedAt time.Time
	Version   int64
	UpdatedBy string
}

// Room is a room with its settings and playback state.
type Room struct {
	ID                 string
	Name               string
	CreatorID          string
	PasswordHash       string
	Hidden             bool
	JoinNeedsApproval  bool
	AllowGuests        bool
	DefaultPermissions uint64
	CreatedAt          time.Time
	State              PlaybackState
	// MemberCount is the number of active members (read-only).
	MemberCount int
}

// RoomMember is a user's membership of a room.
type RoomMember struct {
	RoomID      string
	UserID      string
	Role        int
	Status      int
	Permissions uint64
	JoinedAt    time.Time
	// Restricted: an admin took some of the room's default permissions
	// away from this member (a mute).
	Restricted bool
	// Username and Guest are read from room_users (read-only).
	Username string
	Guest    bool
}

// Movie is a playlist entry.
type Movie struct {
	ID        string
	RoomID    string
	URL       string
	Title     string
	Type      int
	Position  int
	AddedBy   string
	CreatedAt time.Time
}

// ChatMessage is a retained chat message of a room.
type ChatMessage struct {
	RoomID    string
	Seq       int64
	MessageID string
	UserID    string
	Username  string
	Guest     bool
	Content   string
	SentAt    time.Time
}

// Rooms stores player accounts, rooms, members, playlists and chat.
type Rooms struct{ s *Store }

// Rooms returns the rooms sub-store.
func (s *Store) Rooms() *Rooms { return &Rooms{s: s} }

// ---------------------------------------------------------------- users and sessions

// CreateUser stores a player account or guest. ErrConflict if a registered
// user already has the username (case-insensitively).
func (x *Rooms) CreateUser(ctx context.Context, u RoomUser) error {
	if u.ID == "" || u.Username == "" {
		return invalid("a room user needs an id and a name")
	}
	var key any
	if !u.Guest {
		key = strings.ToLower(u.Username)
	}
	_, err := x.s.db.ExecContext(ctx,
		`INSERT INTO room_users (user_id, username, username_key, email, password_hash, guest, guest_room_id, guest_addr, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		u.ID, u.Username, key, u.Email, u.PasswordHash, u.Guest, u.GuestRoomID, u.GuestAddr, timeToMs(u.CreatedAt))
	if err = dbErr(ctx, "create room user", err); errors.Is(err, ErrConflict) {
		return conflict("username %q is taken", u.Username)
	}
	return err
}

const roomUserColumns = `user_id, username, email, password_hash, guest, guest_room_id, created_at`

func scanRoomUser(row interface{ Scan(...any) error }) (RoomUser, error) {
	var (
		u       RoomUser
		created int64
	)
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Guest, &u.GuestRoomID, &created)
	u.CreatedAt = msToTime(created)
	return u, err
}

// UserByName returns the registered user with the username
// (case-insensitively); ErrNotFound if none.
func (x *Rooms) UserByName(ctx context.Context, username string) (RoomUser, error) {
	u, err := scanRoomUser(x.s.db.QueryRowContext(ctx,
		`SELECT `+roomUserColumns+` FROM room_users WHERE username_key = $1`, strings.ToLower(username)))
	if errors.Is(err, sql.ErrNoRows) {
		return RoomUser{}, notFound("room user %q", username)
	}
	return u, dbErr(ctx, "get room user", err)
}

// User returns the user with the id; ErrNotFound if none.
func (x *Rooms) User(ctx context.Context, id string) (RoomUser, error) {
	u, err := scanRoomUser(x.s.db.QueryRowContext(ctx, `SELECT `+roomUserColumns+` FROM room_users WHERE user_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return RoomUser{}, notFound("room user %q", id)
	}
	return u, dbErr(ctx, "get room user", err)
}

// CreateSession stores a login session and, unless first is nil (guests),
// its first refresh token.
func (x *Rooms) CreateSession(ctx context.Context, sess RoomSession, first *RefreshToken) error {
	if sess.ID == "" || sess.UserID == "" {
		return invalid("a session needs an id and a user")
	}
	return x.s.inTx(ctx, "create room session", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO room_user_sessions (session_id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			sess.ID, sess.UserID, timeToMs(sess.CreatedAt), timeToMs(sess.ExpiresAt)); err != nil {
			return dbErr(ctx, "create room session", err)
		}
		if first == nil {
			return nil
		}
		_, err := tx.ExecContext(ctx,
			`INSERT INTO room_refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			first.Hash, sess.ID, timeToMs(first.CreatedAt), timeToMs(first.ExpiresAt))
		return dbErr(ctx, "create room session", err)
	})
}

// RoomRotateResult is what Rotate did, with the token's session.
type RoomRotateResult struct {
	Outcome RotateOutcome
	Session RoomSession
}

// Rotate exchanges the refresh token whose hash is oldHash for next, as
// Tokens.Rotate does for operators: a token exchanged again within grace
// rotates again (RotatedInGrace), later it revokes its session
// (RotateReused).
func (x *Rooms) Rotate(ctx context.Context, oldHash string, next RefreshToken, at time.Time, grace time.Duration) (RoomRotateResult, error) {
	var res RoomRotateResult
	err := x.s.inTx(ctx, "rotate room refresh token", func(tx *sql.Tx) error {
		res = RoomRotateResult{}
		var tokExpires, usedAt, created, expires, revoked int64
		err := tx.QueryRowContext(ctx,
			`SELECT t.expires_at, t.used_at, s.session_id, s.user_id, s.created_at, s.expires_at, s.revoked_at
			 FROM room_refresh_tokens t JOIN room_user_sessions s ON s.session_id = t.session_id
			 WHERE t.token_hash = $1`, oldHash).
			Scan(&tokExpires, &usedAt, &res.Session.ID, &res.Session.UserID, &created, &expires, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			res.Outcome = RotateUnknown
			return nil
		}
		if err != nil {
			return dbErr(ctx, "rotate room refresh token", err)
		}
		res.Session.CreatedAt, res.Session.ExpiresAt, res.Session.RevokedAt = msToTime(created), msToTime(expires), msToTime(revoked)
		now := timeToMs(at)
		outcome := Rotated
		if usedAt != 0 {
			outcome = spentAgain(usedAt, now, grace)
		}
		switch {
		case revoked != 0:
			res.Outcome = RotateRevoked
			return nil
		case outcome == RotateReused:
			return x.revokeSession(ctx, tx, &res, now)
		case tokExpires <= now:
			res.Outcome = RotateExpired
			return nil
		}
		if outcome == Rotated {
			if outcome, err = spend(ctx, tx, "room_refresh_tokens", oldHash, now, grace); err != nil {
				return err
			} else if outcome == RotateReused {
				return x.revokeSession(ctx, tx, &res, now)
			}
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO room_refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			next.Hash, res.Session.ID, timeToMs(next.CreatedAt), timeToMs(next.ExpiresAt)); err != nil {
			return dbErr(ctx, "rotate room refresh token", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE room_user_sessions SET expires_at = $1 WHERE session_id = $2`,
			timeToMs(next.ExpiresAt), res.Session.ID); err != nil {
			return dbErr(ctx, "rotate room refresh token", err)
		}
		res.Session.ExpiresAt = msToTime(timeToMs(next.ExpiresAt))
		res.Outcome = outcome
		return nil
	})
	return res, err
}

func (x *Rooms) revokeSession(ctx context.Context, tx *sql.Tx, res *RoomRotateResult, now int64) error {
	if _, err := tx.ExecContext(ctx,
		`UPDATE room_user_sessions SET revoked_at = $1 WHERE session_id = $2 AND revoked_at = 0`, now, res.Session.ID); err != nil {
		return dbErr(ctx, "revoke room session", err)
	}
	res.Outcome = RotateReused
	res.Session.RevokedAt = msToTime(now)
	return nil
}

// RevokeByRefreshToken revokes the session of the refresh token (logout)
// and returns its id; ErrNotFound if the token is unknown. Revoking twice
// is a no-op.
func (x *Rooms) RevokeByRefreshToken(ctx context.Context, hash string) (string, error) {
	var id string
	err := x.s.inTx(ctx, "revoke room session", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT session_id FROM room_refresh_tokens WHERE token_hash = $1`, hash).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("refresh token")
		}
		if err != nil {
			return dbErr(ctx, "revoke room session", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE room_user_sessions SET revoked_at = $1 WHERE session_id = $2 AND revoked_at = 0`, x.s.nowMs(), id)
		return dbErr(ctx, "revoke room session", err)
	})
	return id, err
}

// Session returns a login session; ErrNotFound if none.
func (x *Rooms) Session(ctx context.Context, id string) (RoomSession, error) {
	var (
		s                         RoomSession
		created, expires, revoked int64
	)
	err := x.s.db.QueryRowContext(ctx,
		`SELECT session_id, user_id, created_at, expires_at, revoked_at FROM room_user_sessions WHERE session_id = $1`, id).
		Scan(&s.ID, &s.UserID, &created, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return RoomSession{}, notFound("room session %q", id)
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = msToTime(created), msToTime(expires), msToTime(revoked)
	return s, dbErr(ctx, "get room session", err)
}

// EndedSessions returns those of ids whose session is revoked or no
// longer exists (what Authenticate refuses as TOKEN_REVOKED), for
// re-checking the sessions of open streams in one query per chunk.
func (x *Rooms) EndedSessions(ctx context.Context, ids []string) ([]string, error) {
	live := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, 0, len(chunk))
		in := inList(&args, chunk)
		rows, err := x.s.db.QueryContext(ctx,
			`SELECT session_id FROM room_user_sessions WHERE revoked_at = 0 AND session_id IN (`+in+`)`, args...)
		if err != nil {
			return nil, dbErr(ctx, "check room sessions", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, dbErr(ctx, "check room sessions", err)
			}
			live[id] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, dbErr(ctx, "check room sessions", err)
		}
	}
	var ended []string
	for _, id := range ids {
		if !live[id] {
			ended = append(ended, id)
		}
	}
	return ended, nil
}

// ---------------------------------------------------------------- rooms

// CreateRoom stores a room and its creator's membership.
func (x *Rooms) CreateRoom(ctx context.Context, r Room, creator RoomMember) error {
	if r.ID == "" || r.Name == "" || r.CreatorID == "" {
		return invalid("a room needs an id, a name and a creator")
	}
	return x.s.inTx(ctx, "create room", func(tx *sql.Tx) error {
		st := r.State
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO rooms (room_id, name, name_key, creator_id, password_hash, hidden, join_needs_approval, allow_guests,
			   default_permissions, created_at, movie_id, playing, position, rate, state_updated_at, state_version, state_updated_by)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			r.ID, r.Name, strings.ToLower(r.Name), r.CreatorID, r.PasswordHash, r.Hidden, r.JoinNeedsApproval, r.AllowGuests,
			int64(r.DefaultPermissions), timeToMs(r.CreatedAt), st.MovieID, st.Playing, st.Position, st.Rate,
			timeToMs(st.UpdatedAt), st.Version, st.UpdatedBy); err != nil {
			return dbErr(ctx, "create room", err)
		}
		return putMember(ctx, tx, creator)
	})
}

const roomColumns = `r.room_id, r.name, r.creator_id, r.password_hash, r.hidden, r.join_needs_approval, r.allow_guests,
	r.default_permissions, r.created_at, r.movie_id, r.playing, r.position, r.rate, r.state_updated_at, r.state_version,
	r.state_updated_by, (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.room_id AND m.status = 1)`

func scanRoom(row interface{ Scan(...any) error }) (Room, error) {
	var (
		r                Room
		perms            int64
		created, updated int64
	)
	err := row.Scan(&r.ID, &r.Name, &r.CreatorID, &r.PasswordHash, &r.Hidden, &r.JoinNeedsApproval, &r.AllowGuests,
		&perms, &created, &r.State.MovieID, &r.State.Playing, &r.State.Position, &r.State.Rate, &updated,
		&r.State.Version, &r.State.UpdatedBy, &r.MemberCount)
	r.DefaultPermissions, r.CreatedAt, r.State.UpdatedAt = uint64(perms), msToTime(created), msToTime(updated)
	return r, err
}

// Room returns a room; ErrNotFound if none.
func (x *Rooms) Room(ctx context.Context, id string) (Room, error) {
	r, err := scanRoom(x.s.db.QueryRowContext(ctx, `SELECT `+roomColumns+` FROM rooms r WHERE r.room_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, notFound("room %q", id)
	}
	return r, dbErr(ctx, "get room", err)
}

// RoomCursor continues ListRooms after the last room of a page.
type RoomCursor struct {
	CreatedAt int64
	ID        string
}

// ListRooms returns up to limit rooms that are not hidden, newest first,
// whose lower-cased name contains search, after the cursor (nil: from the
// newest).
func (x *Rooms) ListRooms(ctx context.Context, search string, after *RoomCursor, limit int) ([]Room, error) {
	q := `SELECT ` + roomColumns + ` FROM rooms r WHERE r.hidden = FALSE`
	args := []any{}
	if search != "" {
		args = append(args, "%"+escapeLike(strings.ToLower(search))+"%")
		q += ` AND r.name_key LIKE $1 ESCAPE '\'`
	}
	if after != nil {
		args = append(args, after.CreatedAt, after.ID)
		q += ` AND (r.created_at, r.room_id) < ($` + itoa(len(args)-1) + `, $` + itoa(len(args)) + `)`
	}
	args = append(args, limit)
	q += ` ORDER BY r.created_at DESC, r.room_id DESC LIMIT $` + itoa(len(args))
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list rooms", err)
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, dbErr(ctx, "list rooms", err)
		}
		out = append(out, r)
	}
	return out, dbErr(ctx, "list rooms", rows.Err())
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func itoa(n int) string { return strconv.Itoa(n) }

// UpdateRoomSettings writes the room's name, password hash and settings.
func (x *Rooms) UpdateRoomSettings(ctx context.Context, r Room) error {
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE rooms SET name = $2, name_key = $3, password_hash = $4, hidden = $5, join_needs_approval = $6,
		   allow_guests = $7, default_permissions = $8 WHERE room_id = $1`,
		r.ID, r.Name, strings.ToLower(r.Name), r.PasswordHash, r.Hidden, r.JoinNeedsApproval, r.AllowGuests, int64(r.DefaultPermissions))
	return affectedOne(ctx, "update room", res, err, "room %q", r.ID)
}

// DeleteRoom deletes a room with its members, playlist and chat.
func (x *Rooms) DeleteRoom(ctx context.Context, id string) error {
	res, err := x.s.db.ExecContext(ctx, `DELETE FROM rooms WHERE room_id = $1`, id)
	return affectedOne(ctx, "delete room", res, err, "room %q", id)
}

// SavePlayback writes st if the stored state is still at version
// prevVersion: ErrConflict otherwise (another node or writer won).
func (x *Rooms) SavePlayback(ctx context.Context, roomID string, st PlaybackState, prevVersion int64) error {
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE rooms SET movie_id = $2, playing = $3, position = $4, rate = $5, state_updated_at = $6, state_version = $7,
		   state_updated_by = $8 WHERE room_id = $1 AND state_version = $9`,
		roomID, st.MovieID, st.Playing, st.Position, st.Rate, timeToMs(st.UpdatedAt), st.Version, st.UpdatedBy, prevVersion)
	if err != nil {
		return dbErr(ctx, "save playback", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(ctx, "save playback", err)
	}
	if n == 0 {
		return conflict("room %q playback is no longer at version %d", roomID, prevVersion)
	}
	return nil
}

// ReserveSeq reserves the next n room event sequence numbers and returns
// the end of the block (the block is (end-n, end]).
func (x *Rooms) ReserveSeq(ctx context.Context, roomID string, n int64) (int64, error) {
	var end int64
	err := x.s.db.QueryRowContext(ctx,
		`UPDATE rooms SET seq_reserved = seq_reserved + $2 WHERE room_id = $1 RETURNING seq_reserved`, roomID, n).Scan(&end)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("room %q", roomID)
	}
	return end, dbErr(ctx, "reserve room seq", err)
}

// ---------------------------------------------------------------- members

func putMember(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, m RoomMember) error {
	_, err := q.ExecContext(ctx,
		`INSERT INTO room_members (room_id, user_id, role, status, permissions, joined_at, restricted) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role, status = excluded.status,
		   permissions = excluded.permissions, joined_at = excluded.joined_at, restricted = excluded.restricted`,
		m.RoomID, m.UserID, m.Role, m.Status, int64(m.Permissions), timeToMs(m.JoinedAt), m.Restricted)
	return dbErr(ctx, "put room member", err)
}

// PutMember inserts or replaces a membership. ErrNotFound if the room or
// user does not exist.
func (x *Rooms) PutMember(ctx context.Context, m RoomMember) error { return putMember(ctx, x.s.db, m) }

const memberColumns = `m.room_id, m.user_id, m.role, m.status, m.permissions, m.joined_at, m.restricted, u.username, u.guest`

func scanMember(row interface{ Scan(...any) error }) (RoomMember, error) {
	var (
		m      RoomMember
		perms  int64
		joined int64
	)
	err := row.Scan(&m.RoomID, &m.UserID, &m.Role, &m.Status, &perms, &joined, &m.Restricted, &m.Username, &m.Guest)
	m.Permissions, m.JoinedAt = uint64(perms), msToTime(joined)
	return m, err
}

// Member returns a membership; ErrNotFound if none.
func (x *Rooms) Member(ctx context.Context, roomID, userID string) (RoomMember, error) {
	m, err := scanMember(x.s.db.QueryRowContext(ctx,
		`SELECT `+memberColumns+` FROM room_members m JOIN room_users u ON u.user_id = m.user_id
		 WHERE m.room_id = $1 AND m.user_id = $2`, roomID, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return RoomMember{}, notFound("member %q of room %q", userID, roomID)
	}
	return m, dbErr(ctx, "get room member", err)
}

// GuestPrecedents returns up to limit memberships in roomID of the room's
// guests who joined from addr and are banned (status banned) or were
// restricted by an admin having joined since since: the banned first,
// then the latest joined.
func (x *Rooms) GuestPrecedents(ctx context.Context, roomID, addr string, banned int, since time.Time, limit int) ([]RoomMember, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT `+memberColumns+` FROM room_members m JOIN room_users u ON u.user_id = m.user_id
		 WHERE u.guest AND u.guest_room_id = $1 AND u.guest_addr = $2 AND m.room_id = $1
		   AND (m.status = $3 OR m.restricted AND m.joined_at >= $4)
		 ORDER BY CASE WHEN m.status = $3 THEN 0 ELSE 1 END, m.joined_at DESC, m.user_id LIMIT $5`,
		roomID, addr, banned, timeToMs(since), limit)
	if err != nil {
		return nil, dbErr(ctx, "list a guest's precedents", err)
	}
	defer rows.Close()
	var out []RoomMember
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, dbErr(ctx, "list a guest's precedents", err)
		}
		out = append(out, m)
	}
	return out, dbErr(ctx, "list a guest's precedents", rows.Err())
}

// DeleteMember removes a membership; ErrNotFound if none.
func (x *Rooms) DeleteMember(ctx context.Context, roomID, userID string) error {
	res, err := x.s.db.ExecContext(ctx, `DELETE FROM room_members WHERE room_id = $1 AND user_id = $2`, roomID, userID)
	return affectedOne(ctx, "delete room member", res, err, "member %q of room %q", userID, roomID)
}

// MemberCursor continues ListMembers after the last member of a page.
type MemberCursor struct {
	JoinedAt int64
	UserID   string
}

// ListMembers returns up to limit members of the room with the status, in
// joining order, after the cursor (nil: from the first).
func (x *Rooms) ListMembers(ctx context.Context, roomID string, status int, after *MemberCursor, limit int) ([]RoomMember, error) {
	q := `SELECT ` + memberColumns + ` FROM room_members m JOIN room_users u ON u.user_id = m.user_id
	      WHERE m.room_id = $1 AND m.status = $2`
	args := []any{roomID, status}
	if after != nil {
		q += ` AND (m.joined_at, m.user_id) > ($3, $4)`
		args = append(args, after.JoinedAt, after.UserID)
	}
	args = append(args, limit)
	q += ` ORDER BY m.joined_at, m.user_id LIMIT $` + itoa(len(args))
	rows, err := x.s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, dbErr(ctx, "list room members", err)
	}
	defer rows.Close()
	var out []RoomMember
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, dbErr(ctx, "list room members", err)
		}
		out = append(out, m)
	}
	return out, dbErr(ctx, "list room members", rows.Err())
}

// ---------------------------------------------------------------- playlist

const movieColumns = `movie_id, room_id, url, title, type, position, added_by, created_at`

func scanMovie(row interface{ Scan(...any) error }) (Movie, error) {
	var (
		m       Movie
		created int64
	)
	err := row.Scan(&m.ID, &m.RoomID, &m.URL, &m.Title, &m.Type, &m.Position, &m.AddedBy, &created)
	m.CreatedAt = msToTime(created)
	return m, err
}

// AddMovie appends m to the room's playlist and returns it with its
// position. ErrConflict when the playlist already holds max movies.
func (x *Rooms) AddMovie(ctx context.Context, m Movie, max int) (Movie, error) {
	err := x.s.inTx(ctx, "add movie", func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_movies WHERE room_id = $1`, m.RoomID).Scan(&n); err != nil {
			return dbErr(ctx, "add movie", err)
		}
		if n >= max {
			return conflict("the playlist of room %q is full (%d movies)", m.RoomID, max)
		}
		m.Position = n
		_, err := tx.ExecContext(ctx, `INSERT INTO room_movies (`+movieColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			m.ID, m.RoomID, m.URL, m.Title, m.Type, m.Position, m.AddedBy, timeToMs(m.CreatedAt))
		return dbErr(ctx, "add movie", err)
	})
	return m, err
}

// Movie returns a movie of the room; ErrNotFound if none.
func (x *Rooms) Movie(ctx context.Context, roomID, movieID string) (Movie, error) {
	m, err := scanMovie(x.s.db.QueryRowContext(ctx,
		`SELECT `+movieColumns+` FROM room_movies WHERE room_id = $1 AND movie_id = $2`, roomID, movieID))
	if errors.Is(err, sql.ErrNoRows) {
		return Movie{}, notFound("movie %q in room %q", movieID, roomID)
	}
	return m, dbErr(ctx, "get movie", err)
}

// ListMovies returns the playlist from index offset, at most limit movies,
// and the playlist's length.
func (x *Rooms) ListMovies(ctx context.Context, roomID string, offset, limit int) ([]Movie, int, error) {
	var total int
	if err := x.s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM room_movies WHERE room_id = $1`, roomID).Scan(&total); err != nil {
		return nil, 0, dbErr(ctx, "list movies", err)
	}
	movies, err := listMovies(ctx, x.s.db, roomID, offset, limit)
	return movies, total, err
}

func listMovies(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, roomID string, offset, limit int) ([]Movie, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT `+movieColumns+` FROM room_movies WHERE room_id = $1 AND position >= $2 ORDER BY position LIMIT $3`, roomID, offset, limit)
	if err != nil {
		return nil, dbErr(ctx, "list movies", err)
	}
	defer rows.Close()
	var out []Movie
	for rows.Next() {
		m, err := scanMovie(rows)
		if err != nil {
			return nil, dbErr(ctx, "list movies", err)
		}
		out = append(out, m)
	}
	return out, dbErr(ctx, "list movies", rows.Err())
}

// RemoveMovie deletes a movie and closes the gap in the positions.
func (x *Rooms) RemoveMovie(ctx context.Context, roomID, movieID string) error {
	return x.s.inTx(ctx, "remove movie", func(tx *sql.Tx) error {
		var pos int
		err := tx.QueryRowContext(ctx, `DELETE FROM room_movies WHERE room_id = $1 AND movie_id = $2 RETURNING position`, roomID, movieID).Scan(&pos)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("movie %q in room %q", movieID, roomID)
		}
		if err != nil {
			return dbErr(ctx, "remove movie", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE room_movies SET position = position - 1 WHERE room_id = $1 AND position > $2`, roomID, pos)
		return dbErr(ctx, "remove movie", err)
	})
}

// MoveMovie moves a movie to index to (clamped to the playlist) and
// returns the whole playlist in its new order.
func (x *Rooms) MoveMovie(ctx context.Context, roomID, movieID string, to int) ([]Movie, error) {
	var out []Movie
	err := x.s.inTx(ctx, "move movie", func(tx *sql.Tx) error {
		all, err := listMovies(ctx, tx, roomID, 0, 1<<30)
		if err != nil {
			return err
		}
		from := -1
		for i, m := range all {
			if m.ID == movieID {
				from = i
			}
		}
		if from < 0 {
			return notFound("movie %q in room %q", movieID, roomID)
		}
		to = min(max(to, 0), len(all)-1)
		m := all[from]
		all = append(all[:from], all[from+1:]...)
		all = append(all[:to], append([]Movie{m}, all[to:]...)...)
		for i := range all {
			if all[i].Position == i {
				continue
			}
			all[i].Position = i
			if _, err := tx.ExecContext(ctx, `UPDATE room_movies SET position = $1 WHERE movie_id = $2`, i, all[i].ID); err != nil {
				return dbErr(ctx, "move movie", err)
			}
		}
		out = all
		return nil
	})
	return out, err
}

// ---------------------------------------------------------------- chat

// AppendChat stores chat messages in one transaction and deletes, in each
// room it touched, the messages older than the room's newest keep.
func (x *Rooms) AppendChat(ctx context.Context, msgs []ChatMessage, keep int) error {
	if len(msgs) == 0 {
		return nil
	}
	return x.s.inTx(ctx, "append chat", func(tx *sql.Tx) error {
		rooms := map[string]bool{}
		for _, c := range msgs {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO room_chat (room_id, seq, message_id, user_id, username, guest, content, sent_at)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (room_id, seq) DO NOTHING`,
				c.RoomID, c.Seq, c.MessageID, c.UserID, c.Username, c.Guest, c.Content, timeToMs(c.SentAt)); err != nil {
				return dbErr(ctx, "append chat", err)
			}
			rooms[c.RoomID] = true
		}
		for room := range rooms {
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM room_chat WHERE room_id = $1 AND seq <= (
				   SELECT seq FROM room_chat WHERE room_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)`, room, keep); err != nil {
				return dbErr(ctx, "append chat", err)
			}
		}
		return nil
	})
}

// ChatBefore returns up to limit of the room's messages with seq < before
// (0: the newest), oldest first.
func (x *Rooms) ChatBefore(ctx context.Context, roomID string, before int64, limit int) ([]ChatMessage, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT room_id, seq, message_id, user_id, username, guest, content, sent_at FROM room_chat
		 WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, roomID, before, limit)
	if err != nil {
		return nil, dbErr(ctx, "read chat", err)
	}
	defer rows.Close()
	var out []ChatMessage
	for rows.Next() {
		var (
			c    ChatMessage
			sent int64
		)
		if err := rows.Scan(&c.RoomID, &c.Seq, &c.MessageID, &c.UserID, &c.Username, &c.Guest, &c.Content, &sent); err != nil {
			return nil, dbErr(ctx, "read chat", err)
		}
		c.SentAt = msToTime(sent)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(ctx, "read chat", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
