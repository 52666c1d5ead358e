package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// TestRooms is the rooms system's store suite, on SQLite and PostgreSQL.
func TestRooms(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		x := s.Rooms()
		now := time.UnixMilli(1_700_000_000_000).UTC()

		// Users: registered names are unique case-insensitively; guests' are not.
		mustNil(t, x.CreateUser(ctx, store.RoomUser{ID: "u1", Username: "Alice", PasswordHash: "h", CreatedAt: now}), "create alice")
		wantErr(t, x.CreateUser(ctx, store.RoomUser{ID: "u2", Username: "alice", CreatedAt: now}), store.ErrConflict, "duplicate name")
		mustNil(t, x.CreateUser(ctx, store.RoomUser{ID: "g1", Username: "guest", Guest: true, GuestRoomID: "r1", CreatedAt: now}), "guest 1")
		mustNil(t, x.CreateUser(ctx, store.RoomUser{ID: "g2", Username: "guest", Guest: true, GuestRoomID: "r1", CreatedAt: now}), "guest 2")
		u, err := x.UserByName(ctx, "ALICE")
		mustNil(t, err, "user by name")
		if u.ID != "u1" || u.PasswordHash != "h" || !u.CreatedAt.Equal(now) {
			t.Fatalf("user %+v", u)
		}
		_, err = x.UserByName(ctx, "guest")
		wantErr(t, err, store.ErrNotFound, "guests are not found by name")

		// Sessions and refresh rotation with reuse detection.
		rt := store.RefreshToken{Hash: "t1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		mustNil(t, x.CreateSession(ctx, store.RoomSession{ID: "s1", UserID: "u1", CreatedAt: now, ExpiresAt: rt.ExpiresAt}, &rt), "session")
		res, err := x.Rotate(ctx, "t1", store.RefreshToken{Hash: "t2", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}, now, 0)
		mustNil(t, err, "rotate")
		if res.Outcome != store.Rotated || res.Session.UserID != "u1" {
			t.Fatalf("rotate %+v", res)
		}
		res, err = x.Rotate(ctx, "t1", store.RefreshToken{Hash: "t3", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}, now, 0)
		mustNil(t, err, "reuse")
		if res.Outcome != store.RotateReused {
			t.Fatalf("reuse %+v", res)
		}
		sess, err := x.Session(ctx, "s1")
		mustNil(t, err, "session")
		if sess.RevokedAt.IsZero() {
			t.Fatal("reuse did not revoke the session")
		}
		_, err = x.RevokeByRefreshToken(ctx, "nope")
		wantErr(t, err, store.ErrNotFound, "logout unknown")
		mustNil(t, x.CreateSession(ctx, store.RoomSession{ID: "s2", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, nil), "session 2")
		ended, err := x.EndedSessions(ctx, []string{"s1", "s2", "gone"})
		mustNil(t, err, "ended sessions")
		if fmt.Sprint(ended) != "[s1 gone]" {
			t.Fatalf("ended sessions %v, want the revoked s1 and the missing gone", ended)
		}

		// Rooms, listing newest first with search and cursor.
		for i := 0; i < 4; i++ {
			r := store.Room{ID: fmt.Sprintf("r%d", i), Name: fmt.Sprintf("Movie night %d", i), CreatorID: "u1",
				Hidden: i == 3, DefaultPermissions: 7, CreatedAt: now.Add(time.Duration(i) * time.Second), State: store.PlaybackState{Rate: 1}}
			mustNil(t, x.CreateRoom(ctx, r, store.RoomMember{RoomID: r.ID, UserID: "u1", Role: 3, Status: 1, Permissions: 1023, JoinedAt: now}), "room")
		}
		page, err := x.ListRooms(ctx, "NIGHT", nil, 2)
		mustNil(t, err, "list")
		if len(page) != 2 || page[0].ID != "r2" || page[1].ID != "r1" || page[0].MemberCount != 1 {
			t.Fatalf("page 1 %+v", page)
		}
		page, err = x.ListRooms(ctx, "night", &store.RoomCursor{CreatedAt: page[1].CreatedAt.UnixMilli(), ID: page[1].ID}, 2)
		mustNil(t, err, "list 2")
		if len(page) != 1 || page[0].ID != "r0" {
			t.Fatalf("page 2 %+v", page)
		}
		if page, _ := x.ListRooms(ctx, "50%_", nil, 5); len(page) != 0 {
			t.Fatalf("LIKE wildcards must be literal: %+v", page)
		}

		// Playback with compare-on-version.
		st := store.PlaybackState{MovieID: "m", Playing: true, Position: 12.5, Rate: 1.5, UpdatedAt: now, Version: 1, UpdatedBy: "u1"}
		mustNil(t, x.SavePlayback(ctx, "r0", st, 0), "save playback")
		wantErr(t, x.SavePlayback(ctx, "r0", st, 0), store.ErrConflict, "stale playback")
		r0, err := x.Room(ctx, "r0")
		mustNil(t, err, "room")
		if r0.State != st {
			t.Fatalf("state %+v, want %+v", r0.State, st)
		}
		a, err := x.ReserveSeq(ctx, "r0", 1000)
		mustNil(t, err, "seq")
		b, err := x.ReserveSeq(ctx, "r0", 1000)
		mustNil(t, err, "seq")
		if a != 1000 || b != 2000 {
			t.Fatalf("seq blocks %d %d", a, b)
		}

		// Members.
		mustNil(t, x.PutMember(ctx, store.RoomMember{RoomID: "r0", UserID: "g1", Role: 1, Status: 2, Permissions: 5, JoinedAt: now.Add(time.Second)}), "pending")
		m, err := x.Member(ctx, "r0", "g1")
		mustNil(t, err, "member")
		if m.Status != 2 || m.Permissions != 5 || !m.Guest || m.Username != "guest" {
			t.Fatalf("member %+v", m)
		}
		pending, err := x.ListMembers(ctx, "r0", 2, nil, 10)
		mustNil(t, err, "list pending")
		if len(pending) != 1 {
			t.Fatalf("pending %+v", pending)
		}
		// A guest's precedents: the banned guests from one address first,
		// then the restricted ones that joined since the time given, the
		// latest first; other guests, addresses and rooms apart.
		for _, g := range []struct {
			id, addr   string
			status     int
			restricted bool
			joined     time.Duration
		}{
			{"ga", "198.51.100.7", 1, true, 0}, {"gb", "198.51.100.7", 3, false, time.Second}, {"gc", "198.51.100.7", 1, false, 2 * time.Second},
			{"gd", "203.0.113.9", 3, false, 0}, {"ge", "198.51.100.7", 1, true, -48 * time.Hour},
		} {
			mustNil(t, x.CreateUser(ctx, store.RoomUser{ID: g.id, Username: "guest", Guest: true, GuestRoomID: "r0", GuestAddr: g.addr, CreatedAt: now}), "guest "+g.id)
			mustNil(t, x.PutMember(ctx, store.RoomMember{RoomID: "r0", UserID: g.id, Role: 1, Status: g.status, Permissions: 7,
				Restricted: g.restricted, JoinedAt: now.Add(g.joined)}), "guest member "+g.id)
		}
		if m, err := x.Member(ctx, "r0", "ga"); err != nil || !m.Restricted {
			t.Fatalf("restricted guest member %+v, %v", m, err)
		}
		from, err := x.GuestPrecedents(ctx, "r0", "198.51.100.7", 3, now.Add(-24*time.Hour), 10)
		mustNil(t, err, "a guest's precedents")
		if len(from) != 2 || from[0].UserID != "gb" || from[1].UserID != "ga" || !from[1].Guest {
			t.Fatalf("precedents at 198.51.100.7: %+v; want gb (banned), ga (restricted within the day)", from)
		}
		from, err = x.GuestPrecedents(ctx, "r0", "198.51.100.7", 3, now.Add(-24*time.Hour), 1)
		mustNil(t, err, "a guest's precedents, limited")
		if len(from) != 1 || from[0].UserID != "gb" {
			t.Fatalf("1 precedent at 198.51.100.7: %+v; want gb", from)
		}
		for _, id := range []string{"ga", "gb", "gc", "gd", "ge"} {
			mustNil(t, x.DeleteMember(ctx, "r0", id), "delete guest member "+id)
		}
		wantErr(t, x.PutMember(ctx, store.RoomMember{RoomID: "nope", UserID: "g1", JoinedAt: now}), store.ErrNotFound, "member of unknown room")
		mustNil(t, x.DeleteMember(ctx, "r0", "g1"), "delete member")
		wantErr(t, x.DeleteMember(ctx, "r0", "g1"), store.ErrNotFound, "delete again")

		// Playlist: append, bound, move, remove.
		for i := 0; i < 3; i++ {
			mv, err := x.AddMovie(ctx, store.Movie{ID: fmt.Sprintf("m%d", i), RoomID: "r0", URL: "https://x/y.mp4", Title: "t", AddedBy: "u1", CreatedAt: now}, 3)
			mustNil(t, err, "add movie")
			if mv.Position != i {
				t.Fatalf("position %d", mv.Position)
			}
		}
		_, err = x.AddMovie(ctx, store.Movie{ID: "m9", RoomID: "r0", URL: "u", Title: "t", AddedBy: "u1", CreatedAt: now}, 3)
		wantErr(t, err, store.ErrConflict, "playlist full")
		moved, err := x.MoveMovie(ctx, "r0", "m2", 0)
		mustNil(t, err, "move")
		if moved[0].ID != "m2" || moved[1].ID != "m0" || moved[2].ID != "m1" {
			t.Fatalf("moved %+v", moved)
		}
		mustNil(t, x.RemoveMovie(ctx, "r0", "m0"), "remove")
		list, total, err := x.ListMovies(ctx, "r0", 0, 10)
		mustNil(t, err, "list movies")
		if total != 2 || list[0].ID != "m2" || list[1].ID != "m1" || list[1].Position != 1 {
			t.Fatalf("after remove %+v", list)
		}

		// Chat keeps the newest `keep` messages.
		var batch []store.ChatMessage
		for i := int64(1); i <= 12; i++ {
			batch = append(batch, store.ChatMessage{RoomID: "r0", Seq: i, MessageID: fmt.Sprint(i), UserID: "u1", Username: "Alice", Content: "hi", SentAt: now})
		}
		mustNil(t, x.AppendChat(ctx, batch[:7], 10), "chat")
		mustNil(t, x.AppendChat(ctx, batch[7:], 10), "chat")
		all, err := x.ChatBefore(ctx, "r0", 0, 100)
		mustNil(t, err, "chat before")
		if len(all) != 10 || all[0].Seq != 3 || all[9].Seq != 12 {
			t.Fatalf("retained %d from %d", len(all), all[0].Seq)
		}
		older, err := x.ChatBefore(ctx, "r0", 6, 2)
		mustNil(t, err, "chat page")
		if len(older) != 2 || older[0].Seq != 4 || older[1].Seq != 5 {
			t.Fatalf("page %+v", older)
		}

		// Deleting a room takes its members, playlist and chat along.
		mustNil(t, x.DeleteRoom(ctx, "r0"), "delete room")
		wantErr(t, x.DeleteRoom(ctx, "r0"), store.ErrNotFound, "delete again")
		if left, _ := x.ChatBefore(ctx, "r0", 0, 10); len(left) != 0 {
			t.Fatal("chat survived its room")
		}
	})
}
