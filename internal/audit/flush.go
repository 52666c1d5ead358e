package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// Journal mode (Config.JournalPath set): Record writes the entry to the
// journal file and returns; the flusher goroutine, owned by the Log (started
// by Open, stopped by Close), moves journaled entries into the store in
// batches of up to maxAuditBatch rows, each batch one transaction that also
// records the journal position it reached. Under load the flusher stores
// full batches as they fill and leaves a part batch until its oldest entry
// has waited half of FlushInterval: a transaction's fixed cost — its
// commit, fsync and the index pages it rewrites — is then paid once per
// maxAuditBatch rows rather than once per the rows that came in while the
// previous commit ran (79 rows per transaction on average at 9,000 calls/s
// when the rest was stored at once, 253 now; see docs/storage.md). A
// waiting Record or Sync has everything stored at once.
//
// jmu guards the journal, the sequence counters and the queue; the flusher
// does its store transaction without it, so Records never wait for the
// database.
//
// Lock order: jmu is never held while waiting for anything but a write(2)
// or truncate(2) on the journal.

// journalRecord journals rec and queues it for the flusher. With wait it
// also waits (bounded by WriteTimeout) until the row is stored and returns
// it.
func (l *Log) journalRecord(ctx context.Context, rec store.AuditRecord, wait bool) (store.AuditRecord, error) {
	l.jmu.Lock()
	if l.jclosed {
		l.jmu.Unlock()
		return l.commit(ctx, rec) // after Close: straight to the store
	}
	if len(l.jqueue) >= l.maxQueued || l.jqueuedBytes >= maxQueuedBytes {
		n := len(l.jqueue)
		l.jmu.Unlock()
		return store.AuditRecord{}, apierr.Newf(codes.Unavailable, apierr.CodeUnavailable,
			"the audit store is behind (%d entries waiting to be stored); retry later", n)
	}
	p := &pendingRecord{seq: l.jseq + 1, rec: rec, queued: time.Now()}
	if err := l.jr.append(journalEntry{seq: p.seq, rec: rec}); err != nil {
		l.jmu.Unlock()
		return store.AuditRecord{}, err
	}
	l.jseq = p.seq
	l.jqueuedBytes += recordBytes(&rec)
	if wait {
		p.done = make(chan struct{})
	}
	l.jqueue = append(l.jqueue, p)
	full := len(l.jqueue) >= maxAuditBatch
	l.jmu.Unlock()
	switch {
	case wait:
		l.kickFlusher()
	case full:
		l.kickFull()
	}
	if !wait {
		return rec, nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.writeTimeout)
	defer cancel()
	select {
	case <-p.done:
		return p.result()
	case <-wctx.Done():
		return store.AuditRecord{}, fmt.Errorf("wait for the audit store (the entry is journaled and will be stored): %w", wctx.Err())
	}
}

// maxQueuedBytes bounds the memory held by journaled entries waiting for
// the store, whatever their count (payloads reach 64 KiB each).
const maxQueuedBytes = 256 << 20

// recordBytes approximates the memory an entry holds.
func recordBytes(r *store.AuditRecord) int64 {
	return int64(len(r.Actor) + len(r.Action) + len(r.Game) + len(r.Env) + len(r.Function) +
		len(r.Payload) + len(r.Result) + len(r.RequestID) + 128)
}

// kickFlusher has the flusher store every queued entry now.
func (l *Log) kickFlusher() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// kickFull has the flusher store the full batches queued.
func (l *Log) kickFull() {
	select {
	case l.full <- struct{}{}:
	default:
	}
}

// Sync returns once every entry recorded before the call is in the store,
// so a read that follows sees it. It fails with the store's error when a
// flush attempted meanwhile failed, and when ctx ends. Without a journal
// Record stores synchronously and Sync returns at once.
func (l *Log) Sync(ctx context.Context) error {
	if l.jr == nil {
		return nil
	}
	l.jmu.Lock()
	target, gen, closed := l.jseq, l.jgen, l.jclosed
	l.jmu.Unlock()
	if closed {
		return nil // Close stored what it could; later Records are stored synchronously
	}
	for {
		l.jmu.Lock()
		applied, changed, err, errGen := l.japplied, l.jchanged, l.jerr, l.jerrGen
		l.jmu.Unlock()
		switch {
		case applied >= target:
			return nil
		case err != nil && errGen > gen:
			return fmt.Errorf("audit: entries are journaled but could not be stored yet: %w", err)
		}
		l.kickFlusher()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runFlusher moves journaled entries into the store every flushInterval
// and when a reader waits (Sync, a waiting Record), full batches as they
// fill, until stop is closed; then it flushes what is left once.
func (l *Log) runFlusher() {
	defer close(l.flusherDone)
	// Ticks come twice per interval; one stores everything once the oldest
	// entry has waited half of it, so no entry waits much longer than
	// flushInterval, and under load the full batches are stored as they
	// fill without a part batch every tick.
	half := max(l.flushInterval/2, 1)
	t := time.NewTicker(half)
	defer t.Stop()
	for {
		all := true
		select {
		case <-l.stop:
			l.flush(true)
			return
		case <-l.kick:
		case <-t.C:
			all = l.oldestWaited(half)
		case <-l.full:
			all = false
		}
		l.flush(all)
	}
}

// oldestWaited reports whether the oldest queued entry was queued at least
// d ago.
func (l *Log) oldestWaited(d time.Duration) bool {
	l.jmu.Lock()
	defer l.jmu.Unlock()
	return len(l.jqueue) > 0 && time.Since(l.jqueue[0].queued) >= d
}

// flush stores the queued entries, a batch per transaction, until less
// than a full batch is left — with all, a part batch too as long as it
// holds an entry queued before the call: the entries that come in during
// its commits wait for their own full batch or the next tick, or flush
// would go on storing the few that came in during each commit — or until a
// transaction fails (the entries stay queued and journaled; the next tick
// retries).
func (l *Log) flush(all bool) {
	if f := l.flushed.Load(); f != nil {
		defer func() {
			l.jmu.Lock()
			applied := l.japplied
			l.jmu.Unlock()
			(*f)(all, applied)
		}()
	}
	l.jmu.Lock()
	upto := l.jseq
	l.jmu.Unlock()
	for {
		l.jmu.Lock()
		n := min(len(l.jqueue), maxAuditBatch)
		if n < maxAuditBatch && !(all && n > 0 && l.jqueue[0].seq <= upto) {
			n = 0
		}
		batch := append(l.fbatch[:0], l.jqueue[:n]...)
		l.jmu.Unlock()
		if n == 0 {
			return
		}
		recs := l.frecs[:0]
		for _, p := range batch {
			recs = append(recs, p.rec)
		}
		l.fbatch, l.frecs = batch, recs
		pos := store.AuditJournalPos{ID: l.jr.id, Seq: batch[n-1].seq}
		ctx, cancel := context.WithTimeout(context.Background(), l.writeTimeout)
		began := time.Now()
		out, err := l.store.Audit().AppendJournaled(ctx, pos, recs, Hash)
		l.metrics.AuditCommit(len(recs), time.Since(began), err)
		cancel()
		l.jmu.Lock()
		l.jgen++
		close(l.jchanged)
		l.jchanged = make(chan struct{})
		if err != nil {
			if l.jerr == nil {
				l.log.Error("audit entries could not be stored; they stay in the journal and are retried", "queued", len(l.jqueue), "err", err)
			}
			l.jerr, l.jerrGen = err, l.jgen
			l.jmu.Unlock()
			clearScratch(batch, recs) // the entries stay queued; the next attempt rebuilds the rows
			return
		}
		if l.jerr != nil {
			l.log.Info("audit entries are being stored again", "queued", len(l.jqueue))
			l.jerr = nil
		}
		for _, p := range batch {
			l.jqueuedBytes -= recordBytes(&p.rec)
		}
		rest := copy(l.jqueue, l.jqueue[n:])
		clear(l.jqueue[rest:])
		l.jqueue = l.jqueue[:rest]
		l.japplied = pos.Seq
		var jerr error
		switch {
		case rest == 0:
			jerr = l.jr.reset()
		case l.jr.size > l.rotateBytes:
			entries := make([]journalEntry, rest)
			for i, p := range l.jqueue {
				entries[i] = journalEntry{seq: p.seq, rec: p.rec}
			}
			jerr = l.jr.rewrite(entries)
		}
		l.jmu.Unlock()
		if jerr != nil {
			// The stored entries stay in the file; a replay skips them.
			l.log.Warn("audit journal not shortened", "err", jerr)
		}
		for i, p := range batch {
			if p.done != nil {
				p.rec = out[i] // the entry has left the queue: nothing else reads it
				close(p.done)
			}
		}
		clearScratch(batch, recs)
	}
}

// clearScratch drops the flusher's references to a batch's entries, so its
// reused slices keep none alive once the batch is stored or the log closed.
func clearScratch(batch []*pendingRecord, recs []store.AuditRecord) {
	clear(batch)
	clear(recs)
}

// replay stores the entries a previous run left in the journal, skipping
// those its store position says are stored, then empties the journal.
func (l *Log) replay(ctx context.Context, entries []journalEntry) error {
	applied, err := l.store.Audit().JournalApplied(ctx, l.jr.id)
	if err != nil {
		return err
	}
	last := applied
	var recs []store.AuditRecord
	stored := 0
	for i, e := range entries {
		last = max(last, e.seq)
		if e.seq > applied {
			recs = append(recs, e.rec)
		}
		if len(recs) == maxAuditBatch || (i == len(entries)-1 && len(recs) > 0) {
			if _, err := l.store.Audit().AppendJournaled(ctx, store.AuditJournalPos{ID: l.jr.id, Seq: e.seq}, recs, Hash); err != nil {
				return fmt.Errorf("audit journal: replay: %w", err)
			}
			stored += len(recs)
			recs = recs[:0]
		}
	}
	if len(entries) > 0 {
		l.log.Info("audit journal replayed", "entries", len(entries), "stored", stored, "already_stored", len(entries)-stored)
	}
	if err := l.jr.reset(); err != nil {
		return err
	}
	l.jseq, l.japplied = last, last
	return nil
}

// Close stops the flusher after it stores every journaled entry, and closes
// the journal. Entries it could not store stay in the journal for the next
// Open. Records after Close are stored synchronously. Close without a
// journal does nothing.
func (l *Log) Close() error {
	if l.jr == nil {
		return nil
	}
	l.jmu.Lock()
	if l.jclosed {
		l.jmu.Unlock()
		return nil
	}
	l.jclosed = true
	l.jmu.Unlock()
	close(l.stop)
	<-l.flusherDone
	l.jmu.Lock()
	defer l.jmu.Unlock()
	left := len(l.jqueue)
	for _, p := range l.jqueue {
		if p.done != nil {
			p.err = fmt.Errorf("audit log closed before the entry was stored; it stays in the journal for the next start: %w", l.jerr)
			close(p.done)
		}
	}
	l.jqueue, l.jqueuedBytes = nil, 0
	cerr := l.jr.close()
	if left > 0 {
		return fmt.Errorf("audit: %d entries stay in the journal %s, to be stored at the next start: %w", left, l.jr.path, l.jerr)
	}
	return cerr
}
