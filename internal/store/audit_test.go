package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// testSeal is a stand-in for internal/audit's hash: enough to see that
// Append hands seal the assigned id and previous hash.
func testSeal(r *store.AuditRecord) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s", r.ID, r.PrevHash, r.Action, r.Payload))
	return hex.EncodeToString(sum[:])
}

func appendAudit(t *testing.T, s *store.Store, rec store.AuditRecord) store.AuditRecord {
	t.Helper()
	out, err := s.Audit().Append(ctxT(t), rec, testSeal)
	mustNil(t, err, "append audit")
	return out
}

func TestAuditAppendChains(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		h, err := s.Audit().Head(ctx)
		mustNil(t, err, "head")
		if h.LastID != 0 || h.LastHash != "" {
			t.Fatalf("empty head = %+v", h)
		}
		ts := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
		a := appendAudit(t, s, store.AuditRecord{Time: ts, Actor: "operator:bob", Action: "invoke", Game: "g", Env: "e",
			Function: "f", Payload: `{"a":1}`, Result: "OK", DurationMs: 12, RequestID: "r1"})
		b := appendAudit(t, s, store.AuditRecord{Time: ts, Action: "login", Payload: "{}"})
		if a.ID != 1 || a.PrevHash != "" || a.Hash == "" || b.ID != 2 || b.PrevHash != a.Hash {
			t.Fatalf("chain: a=%+v b=%+v", a, b)
		}
		if !a.Time.Equal(ts.Truncate(time.Millisecond)) {
			t.Fatalf("time %v not truncated to the stored millisecond", a.Time)
		}
		h, _ = s.Audit().Head(ctx)
		if h.LastID != 2 || h.LastHash != b.Hash {
			t.Fatalf("head = %+v", h)
		}
		rows, err := s.Audit().Range(ctx, 0, 2, 10)
		mustNil(t, err, "range")
		if len(rows) != 2 || rows[0] != a || rows[1] != b {
			t.Fatalf("Range = %+v, want %+v %+v", rows, a, b)
		}
		if rows, _ := s.Audit().Range(ctx, 1, 1, 10); len(rows) != 0 {
			t.Fatalf("empty range returned %+v", rows)
		}
		_, err = s.Audit().Range(ctx, 0, 2, 0)
		wantErr(t, err, store.ErrInvalidArgument, "zero limit")
	})
}

func TestAuditListFiltersAndPages(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 25 {
			game := "a"
			if i%2 == 1 {
				game = "b"
			}
			appendAudit(t, s, store.AuditRecord{Time: base.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("u%d", i%3),
				Action: "invoke", Game: game, Env: "prod", Function: "f", Payload: "{}", Result: "OK"})
		}
		// Page through game a: 13 rows, newest first, no repeats.
		var ids []int64
		tok := ""
		for range 10 {
			rows, next, err := s.Audit().List(ctx, store.AuditFilter{Game: "a", PageSize: 5, PageToken: tok})
			mustNil(t, err, "list")
			for _, r := range rows {
				if r.Game != "a" {
					t.Fatalf("row of game %q in game a's list", r.Game)
				}
				ids = append(ids, r.ID)
			}
			if tok = next; tok == "" {
				break
			}
		}
		if len(ids) != 13 || ids[0] != 25 || ids[12] != 1 {
			t.Fatalf("paged ids = %v", ids)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] >= ids[i-1] {
				t.Fatalf("ids not strictly descending: %v", ids)
			}
		}
		rows, _, err := s.Audit().List(ctx, store.AuditFilter{Actor: "u1", Game: "b"})
		mustNil(t, err, "list actor")
		for _, r := range rows {
			if r.Actor != "u1" || r.Game != "b" {
				t.Fatalf("filter leaked %+v", r)
			}
		}
		if len(rows) != 4 { // i in {1, 7, 13, 19}
			t.Fatalf("actor u1 in game b: %d rows, want 4", len(rows))
		}
		rows, _, err = s.Audit().List(ctx, store.AuditFilter{From: base.Add(10 * time.Second), To: base.Add(15 * time.Second)})
		mustNil(t, err, "list time range")
		if len(rows) != 5 || rows[0].ID != 15 || rows[4].ID != 11 {
			t.Fatalf("time range rows: %d, first %+v", len(rows), rows)
		}
		for _, bad := range []string{"!!", "YQ", "Yg", "YTA", "YS0x"} {
			_, _, err := s.Audit().List(ctx, store.AuditFilter{PageToken: bad})
			wantErr(t, err, store.ErrInvalidArgument, "page token "+bad)
		}
		// SQL metacharacters are values, not syntax.
		for _, m := range metaStrings {
			rows, _, err := s.Audit().List(ctx, store.AuditFilter{Game: m, Env: m, Actor: m, Function: m, Action: m})
			mustNil(t, err, "list with "+m)
			if len(rows) != 0 {
				t.Fatalf("filter %q matched %d rows", m, len(rows))
			}
		}
		appendAudit(t, s, store.AuditRecord{Time: base, Actor: metaStrings[0], Action: "x", Payload: "{}"})
		rows, _, err = s.Audit().List(ctx, store.AuditFilter{Actor: metaStrings[0]})
		mustNil(t, err, "list meta actor")
		if len(rows) != 1 {
			t.Fatalf("meta actor rows = %d", len(rows))
		}
		h, _ := s.Audit().Head(ctx)
		if h.LastID != 26 {
			t.Fatalf("the audit log lost rows: head %d", h.LastID)
		}
	})
}

// TestAuditConcurrentAppends appends from many goroutines (several
// connections): ids stay dense and every row links to its predecessor.
func TestAuditConcurrentAppends(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		const writers, each = 6, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := s.Audit().Append(ctx, store.AuditRecord{Time: time.Now(), Action: fmt.Sprintf("w%d-%d", w, i), Payload: "{}"}, testSeal); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("append: %v", err)
		}
		rows, err := s.Audit().Range(ctx, 0, 1<<62, 1000)
		mustNil(t, err, "range")
		if len(rows) != writers*each {
			t.Fatalf("%d rows, want %d", len(rows), writers*each)
		}
		prev := ""
		for i, r := range rows {
			if r.ID != int64(i+1) || r.PrevHash != prev || r.Hash != testSeal(&r) {
				t.Fatalf("row %d broke the chain: %+v (prev %q)", i+1, r, prev)
			}
			prev = r.Hash
		}
	}, storetest.WithMaxOpenConns(4))
}

// A batch larger than one INSERT statement holds is stored whole, in
// order, every row as given and chained to the one before.
func TestAuditAppendBatchSpansStatements(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		ts := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		recs := make([]store.AuditRecord, 150) // more than two statements' worth
		for i := range recs {
			recs[i] = store.AuditRecord{Time: ts.Add(time.Duration(i) * time.Millisecond), Actor: fmt.Sprintf("operator:u%d", i),
				Action: "invoke", Game: "g", Env: "e", Function: "f", Payload: fmt.Sprintf(`{"i":%d}`, i), Result: "OK",
				DurationMs: int64(i), RequestID: fmt.Sprintf("r%d", i)}
		}
		given := slices.Clone(recs)
		out, err := s.Audit().AppendBatch(ctx, recs, testSeal)
		mustNil(t, err, "append batch")
		if &out[0] != &recs[0] || recs[len(recs)-1].ID != int64(len(recs)) {
			t.Fatalf("AppendBatch did not return recs updated in place")
		}
		rows, err := s.Audit().Range(ctx, 0, int64(len(recs)), len(recs)+1)
		mustNil(t, err, "range")
		if len(rows) != len(recs) {
			t.Fatalf("stored %d rows, want %d", len(rows), len(recs))
		}
		prev := ""
		for i, r := range rows {
			want := given[i]
			want.ID, want.PrevHash, want.Hash, want.Time = int64(i+1), prev, r.Hash, given[i].Time.Truncate(time.Millisecond).UTC()
			if r != out[i] || r != want || r.Hash != testSeal(&r) {
				t.Fatalf("row %d = %+v, want %+v", i, r, want)
			}
			prev = r.Hash
		}
	})
}

func TestAuditAppendJournaledRecordsPosition(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		seq, err := s.Audit().JournalApplied(ctx, "j1")
		mustNil(t, err, "applied of an unknown journal")
		if seq != 0 {
			t.Fatalf("unknown journal applied = %d, want 0", seq)
		}
		recs := []store.AuditRecord{{Time: time.Now(), Action: "a"}, {Time: time.Now(), Action: "b"}}
		_, err = s.Audit().AppendJournaled(ctx, store.AuditJournalPos{ID: "j1", Seq: 7}, recs, testSeal)
		mustNil(t, err, "append journaled")
		_, err = s.Audit().AppendJournaled(ctx, store.AuditJournalPos{ID: "j2", Seq: 3}, recs[:1], testSeal)
		mustNil(t, err, "append from another journal")
		out, err := s.Audit().AppendJournaled(ctx, store.AuditJournalPos{ID: "j1", Seq: 9}, recs, testSeal)
		mustNil(t, err, "append journaled again")
		if out[1].ID != 5 {
			t.Fatalf("last id = %d, want 5", out[1].ID)
		}
		for id, want := range map[string]int64{"j1": 9, "j2": 3} {
			seq, err := s.Audit().JournalApplied(ctx, id)
			mustNil(t, err, "applied")
			if seq != want {
				t.Fatalf("journal %s applied = %d, want %d", id, seq, want)
			}
		}
	})
}
