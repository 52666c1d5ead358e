package store_test

import (
	"slices"
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestProcessesUpsert(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		procs := s.Processes()
		p := &store.Process{ID: "a1.42.9", AgentID: "a1", FleetID: "f1", GameID: "g", Env: "prod", PID: 42,
			Status: store.ProcessLaunching, Healthy: true, LaunchPath: "/bin/game", StartedAt: t0}
		got, err := procs.Upsert(ctx, p)
		mustNil(t, err, "insert")
		if got.Status != store.ProcessLaunching || len(got.LogPaths) != 0 || !got.StartedAt.Equal(t0) {
			t.Fatalf("inserted %+v", got)
		}
		p.Status, p.ClientPort, p.GRPCPort, p.LogPaths, p.ReadyAt = store.ProcessActive, 7000, 8000, []string{"/var/log/a.log", metaStrings[0]}, t0
		got, err = procs.Upsert(ctx, p)
		mustNil(t, err, "update")
		if got.Status != store.ProcessActive || got.ClientPort != 7000 || !slices.Equal(got.LogPaths, p.LogPaths) {
			t.Fatalf("updated %+v", got)
		}

		// Forward only: a stale report cannot undo TERMINATING or health.
		term, err := procs.MarkTerminating(ctx, p.ID, "ACTIVATION_TIMEOUT")
		mustNil(t, err, "mark terminating")
		if term.Status != store.ProcessTerminating || term.StatusReason != "ACTIVATION_TIMEOUT" {
			t.Fatalf("terminating %+v", term)
		}
		p.Healthy = false
		_, err = procs.Upsert(ctx, p)
		mustNil(t, err, "stale report")
		p.Healthy = true
		got, err = procs.Upsert(ctx, p)
		mustNil(t, err, "stale report")
		if got.Status != store.ProcessTerminating || got.Healthy {
			t.Fatalf("a stale report moved the process back: %+v", got)
		}

		other := *p
		other.AgentID = "a2"
		_, err = procs.Upsert(ctx, &other)
		wantErr(t, err, store.ErrConflict, "another agent's process")

		bad := *p
		bad.Status = "SLEEPING"
		_, err = procs.Upsert(ctx, &bad)
		wantErr(t, err, store.ErrInvalidArgument, "unknown status")

		ended, err := procs.MarkEnded(ctx, p.ID, store.ProcessCrashed, "EXIT_CODE_2")
		mustNil(t, err, "mark ended")
		if ended.Status != store.ProcessCrashed || ended.StatusReason != "EXIT_CODE_2" || ended.EndedAt.IsZero() {
			t.Fatalf("ended %+v", ended)
		}
		// A late report never revives an ended process.
		got, err = procs.Upsert(ctx, p)
		mustNil(t, err, "late report")
		if got.Status != store.ProcessCrashed {
			t.Fatalf("late report revived the process: %+v", got)
		}
		again, err := procs.MarkEnded(ctx, p.ID, store.ProcessTerminated, "x")
		mustNil(t, err, "mark ended twice")
		if again.Status != store.ProcessCrashed {
			t.Fatalf("second MarkEnded changed the status: %+v", again)
		}
		_, err = procs.MarkEnded(ctx, p.ID, store.ProcessActive, "")
		wantErr(t, err, store.ErrInvalidArgument, "MarkEnded with a live status")
		_, err = procs.Get(ctx, "missing")
		wantErr(t, err, store.ErrNotFound, "get missing")
	})
}

func TestProcessesListAndCustomData(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fleetWithProcesses(t, s, "f1", 3)
		procs := s.Processes()
		_, err := procs.MarkEnded(ctx, "f1-p1", store.ProcessTerminated, "")
		mustNil(t, err, "end p1")
		live, err := procs.List(ctx, store.ProcessFilter{FleetID: "f1", Live: true})
		mustNil(t, err, "list live")
		if len(live) != 2 || live[0].ID != "f1-p0" || live[1].ID != "f1-p2" {
			t.Fatalf("live = %+v", live)
		}
		byStatus, err := procs.List(ctx, store.ProcessFilter{Status: store.ProcessTerminated})
		mustNil(t, err, "list by status")
		if len(byStatus) != 1 || byStatus[0].ID != "f1-p1" {
			t.Fatalf("by status = %+v", byStatus)
		}
		_, err = procs.List(ctx, store.ProcessFilter{Status: "nope"})
		wantErr(t, err, store.ErrInvalidArgument, "unknown status filter")

		g := &store.GameServerSession{ID: "s1", FleetID: "f1", GameID: "g", Env: "prod", MaxPlayers: 4}
		placed, _, err := s.GameServerSessions().Place(ctx, g, "")
		mustNil(t, err, "place")
		mustNil(t, procs.SetCustomData(ctx, placed.ProcessID, 3, 10), "custom data")
		p, err := procs.Get(ctx, placed.ProcessID)
		mustNil(t, err, "get")
		sess, err := s.GameServerSessions().Get(ctx, "s1")
		mustNil(t, err, "get session")
		if p.CustomCount != 3 || p.MaxCustomCount != 10 || sess.CustomCount != 3 || sess.MaxCustomCount != 10 {
			t.Fatalf("custom data not recorded: process %+v, session %+v", p, sess)
		}
		wantErr(t, procs.SetCustomData(ctx, "missing", 1, 1), store.ErrNotFound, "custom data of unknown process")
	})
}
