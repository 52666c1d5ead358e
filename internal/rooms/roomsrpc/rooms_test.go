package roomsrpc_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/rooms"
)

func TestRooms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner, bob := e.register("owner"), e.register("bob")

	t.Run("create refuses bad input", func(t *testing.T) {
		for _, tc := range []struct {
			req  *clientv1.CreateRoomRequest
			info string
		}{
			{&clientv1.CreateRoomRequest{Name: "   "}, apierr.CodeInvalidArgument},
			{&clientv1.CreateRoomRequest{Name: strings.Repeat("x", 1<<20)}, apierr.CodeFieldLimit},
			{&clientv1.CreateRoomRequest{Name: "a\x00b"}, apierr.CodeInvalidArgument},
			{&clientv1.CreateRoomRequest{Name: "ok", Password: strings.Repeat("p", 129)}, apierr.CodeFieldLimit},
			{&clientv1.CreateRoomRequest{Name: "ok", Settings: &clientv1.RoomSettings{DefaultPermissions: 1 << 40}}, apierr.CodeInvalidArgument},
		} {
			_, err := e.c.CreateRoom(ctx, as(owner, tc.req))
			wantCode(t, err, connect.CodeInvalidArgument, tc.info)
		}
	})

	t.Run("list: public only, paged, searched", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			// Rooms list newest first by creation time in ms; ties are
			// ordered by (random) room id. One room per millisecond.
			e.createRoom(owner, &clientv1.CreateRoomRequest{Name: fmt.Sprintf("Listed %d", i)})
			for created := time.Now().UnixMilli(); time.Now().UnixMilli() <= created; {
				time.Sleep(time.Millisecond)
			}
		}
		e.createRoom(owner, &clientv1.CreateRoomRequest{Name: "Listed hidden", Settings: &clientv1.RoomSettings{Hidden: true}})
		var names []string
		tok := ""
		for pages := 0; ; pages++ {
			resp, err := e.c.ListRooms(ctx, connect.NewRequest(&clientv1.ListRoomsRequest{PageSize: 2, PageToken: tok, Search: "listed"}))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.Msg.GetRooms() {
				names = append(names, r.GetName())
			}
			if tok = resp.Msg.GetNextPageToken(); tok == "" || pages > 10 {
				break
			}
		}
		if got := strings.Join(names, ","); got != "Listed 4,Listed 3,Listed 2,Listed 1,Listed 0" {
			t.Fatalf("listed %s", got)
		}
		_, err := e.c.ListRooms(ctx, connect.NewRequest(&clientv1.ListRoomsRequest{PageToken: "%%%"}))
		wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeInvalidArgument)
		_, err = e.c.ListRooms(ctx, connect.NewRequest(&clientv1.ListRoomsRequest{Search: strings.Repeat("s", 65)}))
		wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeFieldLimit)
	})

	t.Run("join: unknown, malformed, password", func(t *testing.T) {
		_, err := e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: "nonexistent1"}))
		wantCode(t, err, connect.CodeNotFound, apierr.CodeRoomNotFound)
		_, err = e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: "../etc"}))
		wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeInvalidArgument)
		room := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "sesame"})
		_, err = e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeRoomPassword)
		_, err = e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room, Password: "wrong"}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeRoomPassword)
		j, err := e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room, Password: "sesame"}))
		if err != nil || j.Msg.GetMember().GetStatus() != clientv1.MemberStatus_MEMBER_STATUS_ACTIVE || j.Msg.GetState() == nil {
			t.Fatalf("join: %v %v", j, err)
		}
		if j.Msg.GetMember().GetPermissions() != rooms.DefaultMemberPermissions {
			t.Fatalf("permissions %#x", j.Msg.GetMember().GetPermissions())
		}
	})

	t.Run("approval queue", func(t *testing.T) {
		room := e.createRoom(owner, &clientv1.CreateRoomRequest{Settings: &clientv1.RoomSettings{JoinNeedsApproval: true}})
		j, err := e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room}))
		if err != nil || j.Msg.GetMember().GetStatus() != clientv1.MemberStatus_MEMBER_STATUS_PENDING || j.Msg.GetState() != nil {
			t.Fatalf("join: %v %v", j, err)
		}
		_, err = e.c.GetMovieList(ctx, as(bob, &clientv1.GetMovieListRequest{RoomId: room}))
		wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeMemberPending)
		// A plain member cannot see or decide the queue.
		carol := e.register("")
		pending, err := e.c.ListMembers(ctx, as(owner, &clientv1.ListMembersRequest{RoomId: room, Status: clientv1.MemberStatus_MEMBER_STATUS_PENDING}))
		if err != nil || len(pending.Msg.GetMembers()) != 1 || pending.Msg.GetMembers()[0].GetUser().GetId() != bob.id {
			t.Fatalf("pending: %v %v", pending, err)
		}
		_, err = e.c.ApproveMember(ctx, as(carol, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeNotMember)
		if _, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true})); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.GetMovieList(ctx, as(bob, &clientv1.GetMovieListRequest{RoomId: room})); err != nil {
			t.Fatalf("approved member: %v", err)
		}
		_, err = e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true}))
		wantCode(t, err, connect.CodeFailedPrecondition, "")
		// Rejection forgets the request.
		e.join(carol, room)
		if _, err := e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: carol.id})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.GetMovieList(ctx, as(carol, &clientv1.GetMovieListRequest{RoomId: room}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeNotMember)
	})

	t.Run("bans", func(t *testing.T) {
		room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
		e.join(bob, room)
		_, err := e.c.BanMember(ctx, as(bob, &clientv1.BanMemberRequest{RoomId: room, UserId: owner.id}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
		if _, err := e.c.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: bob.id})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeMemberBanned)
		banned, err := e.c.ListMembers(ctx, as(owner, &clientv1.ListMembersRequest{RoomId: room, Status: clientv1.MemberStatus_MEMBER_STATUS_BANNED}))
		if err != nil || len(banned.Msg.GetMembers()) != 1 {
			t.Fatalf("banned: %v %v", banned, err)
		}
		if _, err := e.c.UnbanMember(ctx, as(owner, &clientv1.UnbanMemberRequest{RoomId: room, UserId: bob.id})); err != nil {
			t.Fatal(err)
		}
		e.join(bob, room)
		_, err = e.c.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: "nosuchuser12"}))
		wantCode(t, err, connect.CodeNotFound, apierr.CodeMemberNotFound)
	})

	t.Run("guests", func(t *testing.T) {
		closed := e.createRoom(owner, &clientv1.CreateRoomRequest{})
		_, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: closed, Name: "visitor"}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeGuestsNotAllowed)
		open := e.createRoom(owner, &clientv1.CreateRoomRequest{Password: "pw", Settings: &clientv1.RoomSettings{AllowGuests: true}})
		_, err = e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: open, Name: "visitor"}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeRoomPassword)
		_, err = e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: open, Name: ""}))
		wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeInvalidArgument)
		g, err := e.c.GuestJoin(ctx, connect.NewRequest(&clientv1.GuestJoinRequest{RoomId: open, Name: "visitor", Password: "pw"}))
		if err != nil || !g.Msg.GetUser().GetGuest() || g.Msg.GetState() == nil {
			t.Fatalf("guest join: %v %v", g, err)
		}
		guest := player{id: g.Msg.GetUser().GetId(), token: g.Msg.GetAccessToken()}
		if g.Msg.GetMember().GetPermissions()&uint64(clientv1.Permission_PERMISSION_BAN_MEMBERS) != 0 {
			t.Fatal("guest may ban")
		}
		if _, err := e.c.GetMovieList(ctx, as(guest, &clientv1.GetMovieListRequest{RoomId: open})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.GetMovieList(ctx, as(guest, &clientv1.GetMovieListRequest{RoomId: closed}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodeGuestsNotAllowed)
		_, err = e.c.CreateRoom(ctx, as(guest, &clientv1.CreateRoomRequest{Name: "mine"}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
	})

	t.Run("settings, leave and delete", func(t *testing.T) {
		room := e.createRoom(owner, &clientv1.CreateRoomRequest{Name: "before"})
		e.join(bob, room)
		name := "after"
		_, err := e.c.UpdateRoomSettings(ctx, as(bob, &clientv1.UpdateRoomSettingsRequest{RoomId: room, Name: &name}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
		up, err := e.c.UpdateRoomSettings(ctx, as(owner, &clientv1.UpdateRoomSettingsRequest{RoomId: room, Name: &name,
			Settings: &clientv1.RoomSettings{Hidden: true}}))
		if err != nil || up.Msg.GetRoom().GetName() != "after" || !up.Msg.GetRoom().GetSettings().GetHidden() {
			t.Fatalf("update: %v %v", up, err)
		}
		_, err = e.c.LeaveRoom(ctx, as(owner, &clientv1.LeaveRoomRequest{RoomId: room}))
		wantCode(t, err, connect.CodeFailedPrecondition, "")
		if _, err := e.c.LeaveRoom(ctx, as(bob, &clientv1.LeaveRoomRequest{RoomId: room})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.LeaveRoom(ctx, as(bob, &clientv1.LeaveRoomRequest{RoomId: room}))
		wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeNotMember)
		_, err = e.c.DeleteRoom(ctx, as(bob, &clientv1.DeleteRoomRequest{RoomId: room}))
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
		if _, err := e.c.DeleteRoom(ctx, as(owner, &clientv1.DeleteRoomRequest{RoomId: room})); err != nil {
			t.Fatal(err)
		}
		_, err = e.c.GetRoomInfo(ctx, as(owner, &clientv1.GetRoomInfoRequest{RoomId: room}))
		wantCode(t, err, connect.CodeNotFound, apierr.CodeRoomNotFound)
	})
}

// TestPermissionMatrix refuses each permission bit's operations to a
// member without that bit, naming it, and allows them with only it.
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	type op func(p player, room, movie, target string) error
	ops := map[clientv1.Permission]op{
		clientv1.Permission_PERMISSION_ADD_MOVIE: func(p player, room, _, _ string) error {
			_, err := e.c.AddMovie(ctx, as(p, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/b.webm"}))
			return err
		},
		clientv1.Permission_PERMISSION_REMOVE_MOVIE: func(p player, room, _, _ string) error {
			mv, err := e.c.AddMovie(ctx, as(owner, &clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/c.mp4"}))
			if err != nil {
				return err
			}
			_, err = e.c.RemoveMovie(ctx, as(p, &clientv1.RemoveMovieRequest{RoomId: room, MovieId: mv.Msg.GetMovie().GetId()}))
			return err
		},
		clientv1.Permission_PERMISSION_EDIT_MOVIE: func(p player, room, movie, _ string) error {
			_, err := e.c.ReorderMovies(ctx, as(p, &clientv1.ReorderMoviesRequest{RoomId: room, MovieId: movie, ToIndex: 0}))
			return err
		},
		clientv1.Permission_PERMISSION_SET_CURRENT_MOVIE: func(p player, room, movie, _ string) error {
			_, err := e.c.SetCurrentMovie(ctx, as(p, &clientv1.SetCurrentMovieRequest{RoomId: room, MovieId: movie}))
			return err
		},
		clientv1.Permission_PERMISSION_CONTROL_PLAYBACK: func(p player, room, _, _ string) error {
			_, err := e.c.Seek(ctx, as(p, &clientv1.SeekRequest{RoomId: room, Position: 3}))
			return err
		},
		clientv1.Permission_PERMISSION_APPROVE_MEMBERS: func(p player, room, _, _ string) error {
			_, err := e.c.ListMembers(ctx, as(p, &clientv1.ListMembersRequest{RoomId: room, Status: clientv1.MemberStatus_MEMBER_STATUS_PENDING}))
			return err
		},
		clientv1.Permission_PERMISSION_BAN_MEMBERS: func(p player, room, _, target string) error {
			_, err := e.c.BanMember(ctx, as(p, &clientv1.BanMemberRequest{RoomId: room, UserId: target}))
			return err
		},
		clientv1.Permission_PERMISSION_SET_PERMISSIONS: func(p player, room, _, target string) error {
			// Grants the one bit the actor holds and leaves the target's
			// others as they are (only bits one holds may change).
			_, err := e.c.SetMemberPermissions(ctx, as(p, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: target,
				Permissions: rooms.DefaultMemberPermissions | uint64(clientv1.Permission_PERMISSION_SET_PERMISSIONS)}))
			return err
		},
		clientv1.Permission_PERMISSION_LIVE: func(p player, room, _, _ string) error {
			_, err := e.c.CreateStreamKey(ctx, as(p, &clientv1.CreateStreamKeyRequest{RoomId: room, Name: "main"}))
			return err
		},
	}
	streamOps := map[clientv1.Permission]*clientv1.ClientMessage{
		clientv1.Permission_PERMISSION_CHAT:    chatMsg("hi"),
		clientv1.Permission_PERMISSION_DANMAKU: {Payload: &clientv1.ClientMessage_Danmaku{Danmaku: &clientv1.DanmakuMessage{Content: "wow"}}},
	}
	for bit := range clientv1.Permission_name {
		perm := clientv1.Permission(bit)
		if perm == clientv1.Permission_PERMISSION_UNSPECIFIED {
			continue
		}
		name := strings.TrimPrefix(perm.String(), "PERMISSION_")
		room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
		movie := e.withMovie(owner, room)
		actor, target := e.register(""), e.register("")
		e.join(actor, room)
		e.join(target, room)
		set := func(mask uint64) {
			t.Helper()
			if _, err := e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: actor.id, Permissions: mask})); err != nil {
				t.Fatal(err)
			}
		}
		set(rooms.AllPermissions &^ uint64(perm))
		if msg, ok := streamOps[perm]; ok {
			s := e.openStream(actor, room, 0)
			s.next(isReady)
			s.send(msg)
			got := s.next(isError).GetError()
			if got.GetCode() != apierr.CodePermissionDenied || !strings.Contains(got.GetMessage(), name) {
				t.Fatalf("%s refused with %v", name, got)
			}
			set(uint64(perm))
			s.send(msg)
			s.next(func(m *clientv1.ServerMessage) bool { return m.GetChat() != nil || m.GetDanmaku() != nil })
			continue
		}
		err := ops[perm](actor, room, movie, target.id)
		wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
		if !strings.Contains(err.Error(), "missing permission "+name) {
			t.Fatalf("%s: refusal does not name it: %v", name, err)
		}
		set(uint64(perm))
		if err := ops[perm](actor, room, movie, target.id); err != nil {
			t.Fatalf("%s allowed: %v", name, err)
		}
	}
}

func TestPlaylist(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	for _, tc := range []struct {
		req  *clientv1.AddMovieRequest
		info string
	}{
		{&clientv1.AddMovieRequest{RoomId: room, Url: ""}, apierr.CodeInvalidArgument},
		{&clientv1.AddMovieRequest{RoomId: room, Url: "ftp://example.com/a.mp4"}, apierr.CodeInvalidArgument},
		{&clientv1.AddMovieRequest{RoomId: room, Url: "/relative.mp4"}, apierr.CodeInvalidArgument},
		{&clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/" + strings.Repeat("a", 3000)}, apierr.CodeFieldLimit},
		{&clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/a.mp4", Title: strings.Repeat("t", 1<<20)}, apierr.CodeFieldLimit},
		{&clientv1.AddMovieRequest{RoomId: room, Url: "https://example.com/a.mp4", Type: 99}, apierr.CodeInvalidArgument},
	} {
		_, err := e.c.AddMovie(ctx, as(owner, tc.req))
		wantCode(t, err, connect.CodeInvalidArgument, tc.info)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		mv, err := e.c.AddMovie(ctx, as(owner, &clientv1.AddMovieRequest{RoomId: room, Url: fmt.Sprintf("https://example.com/m%d.m3u8", i)}))
		if err != nil {
			t.Fatal(err)
		}
		if mv.Msg.GetMovie().GetType() != clientv1.MovieType_MOVIE_TYPE_HLS || mv.Msg.GetMovie().GetTitle() != fmt.Sprintf("m%d.m3u8", i) {
			t.Fatalf("movie %v", mv.Msg.GetMovie())
		}
		ids = append(ids, mv.Msg.GetMovie().GetId())
	}
	order := func() string {
		var got []string
		tok := ""
		for {
			resp, err := e.c.GetMovieList(ctx, as(owner, &clientv1.GetMovieListRequest{RoomId: room, PageSize: 2, PageToken: tok}))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range resp.Msg.GetMovies() {
				got = append(got, m.GetId())
			}
			if tok = resp.Msg.GetNextPageToken(); tok == "" {
				return strings.Join(got, ",")
			}
		}
	}
	if got := order(); got != strings.Join(ids, ",") {
		t.Fatalf("order %s", got)
	}
	if _, err := e.c.ReorderMovies(ctx, as(owner, &clientv1.ReorderMoviesRequest{RoomId: room, MovieId: ids[4], ToIndex: 0})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.RemoveMovie(ctx, as(owner, &clientv1.RemoveMovieRequest{RoomId: room, MovieId: ids[1]})); err != nil {
		t.Fatal(err)
	}
	if got, want := order(), strings.Join([]string{ids[4], ids[0], ids[2], ids[3]}, ","); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
	_, err := e.c.RemoveMovie(ctx, as(owner, &clientv1.RemoveMovieRequest{RoomId: room, MovieId: ids[1]}))
	wantCode(t, err, connect.CodeNotFound, apierr.CodeMovieNotFound)
	_, err = e.c.SetCurrentMovie(ctx, as(owner, &clientv1.SetCurrentMovieRequest{RoomId: room, MovieId: "unknownmovie"}))
	wantCode(t, err, connect.CodeNotFound, apierr.CodeMovieNotFound)
	// Removing the current movie clears the playback state.
	if _, err := e.c.SetCurrentMovie(ctx, as(owner, &clientv1.SetCurrentMovieRequest{RoomId: room, MovieId: ids[0]})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.RemoveMovie(ctx, as(owner, &clientv1.RemoveMovieRequest{RoomId: room, MovieId: ids[0]})); err != nil {
		t.Fatal(err)
	}
	info, err := e.c.GetRoomInfo(ctx, as(owner, &clientv1.GetRoomInfoRequest{RoomId: room}))
	if err != nil || info.Msg.GetState().GetMovieId() != "" {
		t.Fatalf("state after removing the current movie: %v %v", info, err)
	}
	_, err = e.c.Play(ctx, as(owner, &clientv1.PlayRequest{RoomId: room}))
	wantCode(t, err, connect.CodeFailedPrecondition, apierr.CodeNoCurrentMovie)
}

func TestPlayback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner, bob := e.register(""), e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.join(bob, room)
	e.withMovie(owner, room)

	seek, err := e.c.Seek(ctx, as(bob, &clientv1.SeekRequest{RoomId: room, Position: 30}))
	if err != nil {
		t.Fatal(err)
	}
	st := seek.Msg.GetState()
	if st.GetPosition() != 30 || st.GetPlaying() || st.GetUpdatedBy() != bob.id {
		t.Fatalf("after seek %v", st)
	}
	pos := 31.5
	play, err := e.c.Play(ctx, as(owner, &clientv1.PlayRequest{RoomId: room, Version: st.GetVersion(), Position: &pos}))
	if err != nil {
		t.Fatal(err)
	}
	if p := play.Msg.GetState(); !p.GetPlaying() || p.GetPosition() != 31.5 || p.GetVersion() != st.GetVersion()+1 {
		t.Fatalf("after play %v", p)
	}
	// An action based on the old version is refused and names the current one.
	_, err = e.c.Pause(ctx, as(bob, &clientv1.PauseRequest{RoomId: room, Version: st.GetVersion()}))
	wantCode(t, err, connect.CodeAborted, apierr.CodePlaybackVersion)
	rate, err := e.c.SetPlaybackRate(ctx, as(bob, &clientv1.SetPlaybackRateRequest{RoomId: room, Rate: 2}))
	if err != nil || rate.Msg.GetState().GetRate() != 2 || !rate.Msg.GetState().GetPlaying() {
		t.Fatalf("rate: %v %v", rate, err)
	}
	pause, err := e.c.Pause(ctx, as(bob, &clientv1.PauseRequest{RoomId: room}))
	if err != nil || pause.Msg.GetState().GetPlaying() || pause.Msg.GetState().GetPosition() < 31.5 {
		t.Fatalf("pause: %v %v", pause, err)
	}
	for _, bad := range []*clientv1.SeekRequest{{RoomId: room, Position: -1}, {RoomId: room, Position: 1e12}, {RoomId: room, Version: -1, Position: 1}} {
		_, err := e.c.Seek(ctx, as(bob, bad))
		wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeInvalidArgument)
	}
	_, err = e.c.SetPlaybackRate(ctx, as(bob, &clientv1.SetPlaybackRateRequest{RoomId: room, Rate: 100}))
	wantCode(t, err, connect.CodeInvalidArgument, apierr.CodeInvalidArgument)
}

// TestConcurrentSeeks: members seeking from the same version at once get
// one winner; everyone's stream ends on the same state.
func TestConcurrentSeeks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := ctxT(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	e.withMovie(owner, room)
	const n = 8
	members := make([]player, n)
	streams := make([]*stream, n)
	for i := range members {
		members[i] = e.register("")
		e.join(members[i], room)
		streams[i] = e.openStream(members[i], room, 0)
		streams[i].next(isReady)
	}
	info, err := e.c.GetRoomInfo(ctx, as(owner, &clientv1.GetRoomInfoRequest{RoomId: room}))
	if err != nil {
		t.Fatal(err)
	}
	base := info.Msg.GetState().GetVersion()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []float64
	)
	for i := range members {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := e.c.Seek(ctx, as(members[i], &clientv1.SeekRequest{RoomId: room, Version: base, Position: float64(10 + i)}))
			if err == nil {
				mu.Lock()
				winners = append(winners, resp.Msg.GetState().GetPosition())
				mu.Unlock()
			} else if connect.CodeOf(err) != connect.CodeAborted {
				t.Errorf("seek %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d seeks won, want 1: %v", len(winners), winners)
	}
	for i, s := range streams {
		st := s.next(func(m *clientv1.ServerMessage) bool {
			return isState(m) && m.GetRoomState().GetState().GetVersion() == base+1
		})
		if got := st.GetRoomState().GetState().GetPosition(); got != winners[0] {
			t.Fatalf("member %d sees %v, winner was %v", i, got, winners[0])
		}
	}
}
