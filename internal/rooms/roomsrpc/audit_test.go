package roomsrpc_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/rooms/roomsrpc"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
	"golang.org/x/time/rate"
)

// TestAudit: every room write reaches the operators' audit trail (the
// hash-chained log in the same database) with the player, the room, the
// request (password masked) and the outcome, refusals included; player
// actions (join, playlist, playback, chat) do not.
func TestAudit(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	alog, err := audit.Open(context.Background(), audit.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	e := newEnvWith(t, st, roomsrpc.Options{Audit: alog})
	ctx := ctxT(t)
	owner, bob := e.register("owner"), e.register("bob")

	room := e.createRoom(owner, &clientv1.CreateRoomRequest{Name: "audited", Password: "door-secret",
		Settings: &clientv1.RoomSettings{JoinNeedsApproval: true}})
	ok := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ok(e.c.UpdateRoomSettings(ctx, as(owner, &clientv1.UpdateRoomSettingsRequest{RoomId: room, Password: ptr("new-secret")})))
	ok(e.c.JoinRoom(ctx, as(bob, &clientv1.JoinRoomRequest{RoomId: room, Password: "new-secret"}))) // not audited
	ok(e.c.ApproveMember(ctx, as(owner, &clientv1.ApproveMemberRequest{RoomId: room, UserId: bob.id, Approve: true})))
	_, err = e.c.BanMember(ctx, as(bob, &clientv1.BanMemberRequest{RoomId: room, UserId: owner.id})) // refused, audited
	wantCode(t, err, connect.CodePermissionDenied, apierr.CodePermissionDenied)
	ok(e.c.SetMemberPermissions(ctx, as(owner, &clientv1.SetMemberPermissionsRequest{RoomId: room, UserId: bob.id,
		Permissions: uint64(clientv1.Permission_PERMISSION_CHAT)})))
	e.withMovie(owner, room)                                                       // not audited
	ok(e.c.Seek(ctx, as(owner, &clientv1.SeekRequest{RoomId: room, Position: 5}))) // not audited
	ok(e.c.BanMember(ctx, as(owner, &clientv1.BanMemberRequest{RoomId: room, UserId: bob.id})))
	ok(e.c.UnbanMember(ctx, as(owner, &clientv1.UnbanMemberRequest{RoomId: room, UserId: bob.id})))
	ok(e.c.CreateStreamKey(ctx, as(owner, &clientv1.CreateStreamKeyRequest{RoomId: room, Name: "main"})))
	ok(e.c.RotateStreamKey(ctx, as(owner, &clientv1.RotateStreamKeyRequest{RoomId: room, Name: "main"})))
	ok(e.c.RevokeStreamKey(ctx, as(owner, &clientv1.RevokeStreamKeyRequest{RoomId: room, Name: "main"})))
	ok(e.c.DeleteRoom(ctx, as(owner, &clientv1.DeleteRoomRequest{RoomId: room})))

	rows, _, err := st.Audit().List(ctx, store.AuditFilter{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b store.AuditRecord) int { return int(a.ID - b.ID) })
	type row struct{ actor, action, result string }
	var got []row
	for _, r := range rows {
		got = append(got, row{r.Actor, r.Action, r.Result})
		var p struct {
			RoomID  string          `json:"room_id"`
			Request json.RawMessage `json:"request"`
		}
		if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
			t.Fatalf("row %d payload %s: %v", r.ID, r.Payload, err)
		}
		if p.RoomID != room {
			t.Errorf("row %d (%s) names room %q, want %s", r.ID, r.Action, p.RoomID, room)
		}
		if strings.Contains(r.Payload, "secret") {
			t.Errorf("row %d (%s) holds the password: %s", r.ID, r.Action, r.Payload)
		}
		if r.Action == roomsrpc.ActionRoomCreate && !strings.Contains(r.Payload, `"password":"***"`) {
			t.Errorf("room.create row does not show the masked password: %s", r.Payload)
		}
	}
	want := []row{
		{"player:owner", roomsrpc.ActionRoomCreate, "OK"},
		{"player:owner", roomsrpc.ActionRoomSettings, "OK"},
		{"player:owner", roomsrpc.ActionMemberApprove, "OK"},
		{"player:bob", roomsrpc.ActionMemberBan, "PERMISSION_DENIED"},
		{"player:owner", roomsrpc.ActionMemberPermissions, "OK"},
		{"player:owner", roomsrpc.ActionMemberBan, "OK"},
		{"player:owner", roomsrpc.ActionMemberUnban, "OK"},
		{"player:owner", roomsrpc.ActionStreamKeyCreate, "OK"},
		{"player:owner", roomsrpc.ActionStreamKeyRotate, "OK"},
		{"player:owner", roomsrpc.ActionStreamKeyRevoke, "OK"},
		{"player:owner", roomsrpc.ActionRoomDelete, "OK"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit rows\n got %v\nwant %v", got, want)
	}
	// The rows are links of the operators' chain.
	auditor := principal.Principal{Kind: principal.Operator, Name: "auditor",
		Grants: []principal.Grant{{Role: "auditor", Scope: "*", Permissions: []string{rbac.AuditRead}}}}
	res, err := alog.Verify(ctx, auditor)
	if err != nil || !res.OK || res.RowsChecked != int64(len(want)) {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

func ptr[T any](v T) *T { return &v }

// Refused calls, which any player can make, are audited only within the
// refusal limiter; writes that succeed are always audited.
func TestAuditRefusalsBounded(t *testing.T) {
	t.Parallel()
	st := storetest.SQLite(t)
	alog, err := audit.Open(context.Background(), audit.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	// No refill: exactly two refusals are recorded, whatever the timing.
	e := newEnvWith(t, st, roomsrpc.Options{Audit: alog, AuditRefusals: rate.NewLimiter(0, 2)})
	ctx := ctxT(t)
	mallory := e.register("mallory")
	for range 5 {
		if _, err := e.c.DeleteRoom(ctx, as(mallory, &clientv1.DeleteRoomRequest{RoomId: "nosuchroom12"})); err == nil {
			t.Fatal("deleting a room that does not exist succeeded")
		}
	}
	e.createRoom(mallory, &clientv1.CreateRoomRequest{Name: "after the flood"})
	rows, _, err := st.Audit().List(ctx, store.AuditFilter{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var refused, created int
	for _, r := range rows {
		switch {
		case r.Action == roomsrpc.ActionRoomDelete && r.Result != "OK":
			refused++
		case r.Action == roomsrpc.ActionRoomCreate && r.Result == "OK":
			created++
		}
	}
	if refused != 2 || created != 1 {
		t.Fatalf("%d refused rows (want 2, the limiter's burst), %d create rows (want 1): %+v", refused, created, rows)
	}
}
