package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/audit"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// journalStack is a SQLite file and a journal path in one directory, so a
// test can reopen both as a restarted server would.
type journalStack struct {
	dir, db, journal string
}

func newJournalStack(t *testing.T) journalStack {
	t.Helper()
	dir := t.TempDir()
	return journalStack{dir: dir, db: filepath.Join(dir, "croupier.db"), journal: filepath.Join(dir, "audit.journal")}
}

func (js journalStack) openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(ctxT(t), store.Config{Driver: "sqlite", DSN: js.db})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openLog opens a journaled Log whose flusher only runs when asked (Sync,
// Append, a full batch or Close): the interval is longer than any test.
func (js journalStack) openLog(t *testing.T, s *store.Store) *audit.Log {
	t.Helper()
	l, err := audit.Open(ctxT(t), audit.Config{Store: s, JournalPath: js.journal, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (js journalStack) journalBytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(js.journal)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func record(t *testing.T, l *audit.Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.Record(ctxT(t), audit.Entry{Actor: "operator:x", Action: audit.ActionInvoke, Game: "g", Env: "prod",
			Function: "f", Payload: map[string]int{"i": i}, RequestID: fmt.Sprint("req-", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// storedRequests returns the request ids of every stored row in id order,
// after checking that the chain verifies.
func storedRequests(t *testing.T, l *audit.Log, s *store.Store) []string {
	t.Helper()
	res, err := l.Verify(ctxT(t), auditor)
	if err != nil || !res.OK {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	rows, err := s.Audit().Range(ctxT(t), 0, 1<<62, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.RequestID
	}
	return out
}

func wantRequests(t *testing.T, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("stored %d rows %v, want requests %d..%d once each", len(got), got, from, to-1)
	}
	for i, g := range got {
		if want := fmt.Sprint("req-", from+i); g != want {
			t.Fatalf("row %d is %s, want %s (rows %v)", i+1, g, want, got)
		}
	}
}

func TestJournalRecordDoesNotWaitForTheStore(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 5)
	if rows, _, err := s.Audit().List(ctxT(t), store.AuditFilter{}); err != nil || len(rows) != 0 {
		t.Fatalf("the store holds %d rows before a flush (%v); Record should only journal", len(rows), err)
	}
	if n := len(js.journalBytes(t)); n <= audit.JournalHeaderLen {
		t.Fatalf("journal is %d bytes after 5 records; want the entries in it", n)
	}
	// A reader sees its own writes: List flushes first.
	rows, _, err := l.List(ctxT(t), auditor, audit.Filter{})
	if err != nil || len(rows) != 5 || rows[0].RequestID != "req-4" || rows[0].ID != 5 {
		t.Fatalf("List after Record: %d rows (%+v), %v", len(rows), rows, err)
	}
	if n := len(js.journalBytes(t)); n != audit.JournalHeaderLen {
		t.Fatalf("journal is %d bytes after every entry was stored, want it emptied to its header (%d)", n, audit.JournalHeaderLen)
	}
	// Append waits for the row.
	rec, err := l.Append(ctxT(t), audit.Entry{Action: "test", RequestID: "req-5"})
	if err != nil || rec.ID != 6 || rec.Hash == "" {
		t.Fatalf("Append = %+v, %v", rec, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, storedRequests(t, l, s), 0, 6)
}

func TestJournalCloseFlushes(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 300) // more than one batch
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, storedRequests(t, l, s), 0, 300)
	// After Close a Record is stored at once.
	record(t, l, 300, 301)
	wantRequests(t, storedRequests(t, l, s), 0, 301)
}

func TestJournalReplayAfterCrash(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 3)
	if err := l.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	record(t, l, 3, 10)
	audit.Abandon(l) // the process dies: 3 rows stored, 7 only journaled

	l2 := js.openLog(t, s)
	wantRequests(t, storedRequests(t, l2, s), 0, 10)
	record(t, l2, 10, 12)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	// A third start finds nothing to replay.
	l3 := js.openLog(t, s)
	defer l3.Close()
	wantRequests(t, storedRequests(t, l3, s), 0, 12)
}

// A crash after the flusher's transaction committed but before it emptied
// the journal leaves stored entries in the file: the replay skips exactly
// those.
func TestJournalReplaySkipsStoredEntries(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 5)
	before := js.journalBytes(t) // entries 0..4, about to be stored
	if err := l.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	record(t, l, 5, 8)
	after := js.journalBytes(t) // header, then entries 5..7
	audit.Abandon(l)
	if !bytes.Equal(before[:audit.JournalHeaderLen], after[:audit.JournalHeaderLen]) {
		t.Fatal("the journal's header changed across a truncation")
	}
	// The file as it would be had the truncation not happened.
	crashed := append(append([]byte(nil), before...), after[audit.JournalHeaderLen:]...)
	if err := os.WriteFile(js.journal, crashed, 0o600); err != nil {
		t.Fatal(err)
	}
	l2 := js.openLog(t, s)
	defer l2.Close()
	wantRequests(t, storedRequests(t, l2, s), 0, 8)
}

func TestJournalTornTail(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 4)
	audit.Abandon(l)
	b := js.journalBytes(t)
	// An OS crash during the last write: the last entry is cut short.
	if err := os.WriteFile(js.journal, b[:len(b)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	l2 := js.openLog(t, s)
	defer l2.Close()
	wantRequests(t, storedRequests(t, l2, s), 0, 3)
}

func TestJournalBadHeaderRefusesToStart(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	if err := os.WriteFile(js.journal, []byte("something else entirely, not a journal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := audit.Open(ctxT(t), audit.Config{Store: s, JournalPath: js.journal})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("not a Croupier audit journal")) {
		t.Fatalf("Open over a foreign file: %v", err)
	}
}

func TestJournalWriteErrorFailsRecord(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 1)
	audit.BreakJournal(l)
	err := l.Record(ctxT(t), audit.Entry{Action: audit.ActionInvoke})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("audit journal: write")) {
		t.Fatalf("Record with a failing journal: %v", err)
	}
	_ = l.Close()
}

func TestJournalFileMode(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	if err := os.WriteFile(js.journal, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(js.journal, 0o644); err != nil {
		t.Fatal(err)
	}
	l := js.openLog(t, s)
	defer l.Close()
	st, err := os.Stat(js.journal)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

// Record keeps working while the database is unreachable; the entries wait
// in the journal and reach the store at the next start.
func TestJournalOutlivesTheStore(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	record(t, l, 0, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	record(t, l, 2, 4)
	if err := l.Sync(ctxT(t)); err == nil {
		t.Fatal("Sync with the store closed succeeded")
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close with entries left in the journal reported nothing")
	}
	s2 := js.openStore(t)
	l2 := js.openLog(t, s2)
	defer l2.Close()
	wantRequests(t, storedRequests(t, l2, s2), 0, 4)
}

func TestJournalConcurrentRecords(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l, err := audit.Open(ctxT(t), audit.Config{Store: s, JournalPath: js.journal, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	audit.SetRotateBytes(l, 1) // rewrite the journal whenever a flush leaves entries in it
	const writers, each = 8, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(context.Background(), audit.Entry{Action: audit.ActionInvoke,
					RequestID: fmt.Sprintf("w%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A reader runs alongside and sees a verified prefix each time.
	wg.Go(func() {
		for range 20 {
			if res, err := l.Verify(context.Background(), auditor); err != nil || !res.OK {
				t.Errorf("verify during writes: %+v, %v", res, err)
				return
			}
		}
	})
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := storedRequests(t, l, s)
	if len(got) != writers*each {
		t.Fatalf("stored %d rows, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	next := map[string]int{}
	for _, g := range got {
		if seen[g] {
			t.Fatalf("%s stored twice", g)
		}
		seen[g] = true
		var w, i int
		if _, err := fmt.Sscanf(g, "w%d-%d", &w, &i); err != nil {
			t.Fatal(err)
		}
		// Each writer's entries are stored in the order it recorded them.
		if k := fmt.Sprint(w); next[k] != i {
			t.Fatalf("writer %d: entry %d stored before entry %d", w, i, next[k])
		}
		next[fmt.Sprint(w)]++
	}
	if n := len(js.journalBytes(t)); n != audit.JournalHeaderLen {
		t.Fatalf("journal is %d bytes after Close stored everything", n)
	}
}

// TestJournalWaitersGetTheirOwnRows: the flusher reuses its batch's rows
// from one transaction to the next, so what a waiting Append returns must
// not point into them.
func TestJournalWaitersGetTheirOwnRows(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	l, err := audit.Open(ctxT(t), audit.Config{Store: js.openStore(t), JournalPath: js.journal, FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	const writers, each = 4, 100
	ids := make([][]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				req := fmt.Sprintf("w%d-%d", w, i)
				rec, err := l.Append(context.Background(), audit.Entry{Action: audit.ActionInvoke, RequestID: req})
				if err != nil {
					t.Error(err)
					return
				}
				if rec.RequestID != req || rec.ID <= 0 || rec.Hash == "" {
					t.Errorf("Append(%s) returned row %d of %q (hash %q)", req, rec.ID, rec.RequestID, rec.Hash)
					return
				}
				ids[w] = append(ids[w], rec.ID)
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, ws := range ids {
		for _, id := range ws {
			if seen[id] {
				t.Fatalf("row %d returned to two Appends", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct rows returned, want %d", len(seen), writers*each)
	}
}

func TestJournalQueueBound(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l, err := audit.Open(ctxT(t), audit.Config{Store: s, JournalPath: js.journal, FlushInterval: time.Hour, MaxQueued: 3})
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, 0, 3)
	err = l.Record(ctxT(t), audit.Entry{Action: audit.ActionInvoke})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "audit store is behind") {
		t.Fatalf("Record beyond MaxQueued: %v", err)
	}
	if err := l.Sync(ctxT(t)); err != nil { // drains the queue
		t.Fatal(err)
	}
	record(t, l, 3, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, storedRequests(t, l, s), 0, 4)
}

// Text PostgreSQL would refuse (a NUL byte, invalid UTF-8) is stored with
// U+FFFD in its place, so no row can block the flusher's queue.
func TestJournalStoresOnlyValidText(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s)
	defer l.Close()
	rec, err := l.Append(ctxT(t), audit.Entry{Actor: "operator:\xffbob", Action: audit.ActionInvoke, Game: "a\x00b",
		RequestID: "r\x00", Payload: []byte(`{"s":"ok"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Actor != "operator:\uFFFDbob" || rec.Game != "a\uFFFDb" || rec.RequestID != "r\uFFFD" || rec.Payload != `{"s":"ok"}` {
		t.Fatalf("stored %+v", rec)
	}
	if res, err := l.Verify(ctxT(t), auditor); err != nil || !res.OK {
		t.Fatalf("verify: %+v, %v", res, err)
	}
}

// storedCount is the number of rows in the store, read without a flush.
func storedCount(t *testing.T, s *store.Store) int {
	t.Helper()
	rows, err := s.Audit().Range(ctxT(t), 0, 1<<62, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

// Under load the flusher stores full batches as they fill and leaves a part
// batch for the tick: storing the few entries that came in during the
// previous commit at once made many small transactions, each paying a
// commit and an fsync.
func TestJournalStoresFullBatchesAsTheyFill(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l := js.openLog(t, s) // no tick within the test
	type flushed struct {
		all     bool
		applied int64
	}
	var (
		mu      sync.Mutex
		flushes []flushed
	)
	audit.OnFlush(l, func(all bool, applied int64) {
		mu.Lock()
		defer mu.Unlock()
		flushes = append(flushes, flushed{all, applied})
	})
	const batch, extra = 256, 44
	record(t, l, 0, batch+extra)
	deadline := time.Now().Add(20 * time.Second)
	for storedCount(t, s) < batch {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows stored 20 s after %d records, want a full batch of %d", storedCount(t, s), batch+extra, batch)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Only a tick (an hour away) or a reader stores the part batch: every
	// flush before the reader's below stored whole batches.
	if err := l.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if n := storedCount(t, s); n != batch+extra {
		t.Fatalf("%d rows stored after Sync, want %d", n, batch+extra)
	}
	mu.Lock()
	for i, f := range flushes {
		if f.all {
			break // the reader's
		}
		if f.applied%batch != 0 {
			t.Fatalf("flush %d (full batches only) left %d entries stored, not a multiple of %d: it stored a part batch (flushes: %v)", i, f.applied, batch, flushes)
		}
	}
	if len(flushes) == 0 || flushes[0].all || flushes[0].applied != batch {
		t.Fatalf("flushes %v: want the first to store the full batch of %d alone", flushes, batch)
	}
	mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantRequests(t, storedRequests(t, l, s), 0, batch+extra)
}

// A part batch is stored by the ticks within about FlushInterval, with no
// reader asking.
func TestJournalTickStoresAPartBatch(t *testing.T) {
	t.Parallel()
	js := newJournalStack(t)
	s := js.openStore(t)
	l, err := audit.Open(ctxT(t), audit.Config{Store: s, JournalPath: js.journal, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	record(t, l, 0, 5)
	deadline := time.Now().Add(20 * time.Second)
	for storedCount(t, s) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 rows stored 20 s after they were recorded, with a flush interval of 20 ms", storedCount(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
