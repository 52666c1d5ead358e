package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/rbac"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/structjson"
	"github.com/croupier/croupier/internal/telemetry"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Config configures a Log.
type Config struct {
	Store *store.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives failures to record; nil discards them.
	Logger *slog.Logger
	// MaxPayloadBytes caps the masked payload kept per row; a larger one is
	// shrunk by Truncate (field names kept, long values cut). 0 means 64 KiB.
	MaxPayloadBytes int
	// WriteTimeout bounds one append, which runs detached from the caller's
	// context (see Record). 0 means 10 s.
	WriteTimeout time.Duration
	// VerifyBatch is how many rows Verify reads per query; 0 means 1000.
	VerifyBatch int
	// Metrics receives commit latency and batch sizes; nil records nothing.
	Metrics *telemetry.Metrics

	// JournalPath, when set, is the audit journal file (the server uses
	// DATA_DIR/audit.journal): Record hands an entry off to it with one
	// write and returns, and a background flusher stores journaled entries
	// in batches (see flush.go). Empty means every Record is stored in the
	// database before it returns (concurrent ones share a transaction).
	JournalPath string
	// FlushInterval is how long a journaled entry may wait before the
	// flusher stores it (a full batch or a reader flushes sooner); 0 means
	// 50 ms. It bounds how stale other server nodes' view of the log is.
	FlushInterval time.Duration
	// MaxQueued bounds the journaled entries waiting for the store (memory
	// while the database is unreachable); beyond it Record fails with
	// UNAVAILABLE. 0 means 65536.
	MaxQueued int
}

// Log is the audit log service.
type Log struct {
	store        *store.Store
	now          func() time.Time
	log          *slog.Logger
	maxPayload   int
	writeTimeout time.Duration
	verifyBatch  int
	metrics      *telemetry.Metrics

	// Group commit: concurrent Records are appended in one transaction.
	// queue holds the entries waiting; busy is true while one caller (the
	// leader) writes a batch. Each caller waits for its own entry, so the
	// queue is bounded by the number of callers.
	mu    sync.Mutex
	queue []*pendingRecord
	busy  bool

	// Journal mode (see flush.go); jr is nil without a journal.
	jr            *journal
	flushInterval time.Duration
	maxQueued     int
	rotateBytes   int64
	kick          chan struct{} // buffered 1: wakes the flusher to store every queued entry
	full          chan struct{} // buffered 1: wakes the flusher to store the full batches
	stop          chan struct{} // closed by Close
	flusherDone   chan struct{} // closed when the flusher returns

	jmu          sync.Mutex
	jclosed      bool
	jseq         int64            // last sequence journaled
	japplied     int64            // last sequence stored
	jqueue       []*pendingRecord // journaled, not yet stored, in sequence order
	jqueuedBytes int64            // recordBytes of jqueue
	jgen         int64            // flush attempts so far
	jchanged     chan struct{}    // closed and replaced after each flush attempt
	jerr         error            // the last flush attempt's error, nil once one succeeds
	jerrGen      int64            // the attempt jerr came from
	// The flusher's scratch, reused from one batch to the next (its
	// goroutine alone uses them): a batch's entries and their rows.
	fbatch []*pendingRecord
	frecs  []store.AuditRecord
	// flushed, set by tests only (export_test.go), is called after each
	// flush with its all argument and japplied.
	flushed atomic.Pointer[func(all bool, applied int64)]
}

// pendingRecord is one entry waiting for the store: a Record waiting for
// the group commit, or a journaled entry waiting for the flusher.
type pendingRecord struct {
	seq    int64             // journal sequence; 0 without a journal
	queued time.Time         // when it was journaled (journal mode)
	rec    store.AuditRecord // the entry; once done is closed without err, the row as stored
	err    error
	done   chan struct{} // closed when rec or err is set; journal mode: nil unless a caller waits
	lead   chan struct{} // group commit: closed when this caller must write the next batch
}

// maxAuditBatch bounds the rows written in one transaction.
const maxAuditBatch = 256

// journalRotateBytes is the journal size beyond which the flusher rewrites
// it with only the entries not yet stored, when it never finds it empty.
const journalRotateBytes = 8 << 20

// New returns a Log over cfg.Store; it is Open with a background context.
func New(cfg Config) (*Log, error) { return Open(context.Background(), cfg) }

// Open returns a Log over cfg.Store. With cfg.JournalPath it first stores
// the entries a previous run left in the journal (ctx bounds that), then
// starts the flusher, which runs until Close.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("audit: a store is required")
	}
	l := &Log{store: cfg.Store, now: cfg.Now, log: cfg.Logger, maxPayload: cfg.MaxPayloadBytes,
		writeTimeout: cfg.WriteTimeout, verifyBatch: cfg.VerifyBatch, metrics: cfg.Metrics}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.maxPayload <= 0 {
		l.maxPayload = 64 << 10
	}
	if l.writeTimeout <= 0 {
		l.writeTimeout = 10 * time.Second
	}
	if l.verifyBatch <= 0 {
		l.verifyBatch = 1000
	}
	if cfg.JournalPath == "" {
		return l, nil
	}
	l.flushInterval, l.maxQueued, l.rotateBytes = cfg.FlushInterval, cfg.MaxQueued, journalRotateBytes
	if l.flushInterval <= 0 {
		l.flushInterval = 50 * time.Millisecond
	}
	if l.maxQueued <= 0 {
		l.maxQueued = 1 << 16
	}
	jr, entries, torn, err := openJournal(cfg.JournalPath)
	if err != nil {
		return nil, err
	}
	l.jr = jr
	if torn > 0 {
		l.log.Warn("audit journal ends in a partial entry (an OS crash during a write?); dropped it",
			"path", cfg.JournalPath, "bytes", torn)
	}
	if err := l.replay(ctx, entries); err != nil {
		_ = jr.close()
		return nil, err
	}
	l.kick, l.full, l.stop, l.flusherDone, l.jchanged = make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}), make(chan struct{}), make(chan struct{})
	go l.runFlusher()
	return l, nil
}

// Record appends e to the log. With a journal it returns once the entry is
// written to the journal file (the flusher stores it within FlushInterval;
// readers of the log call Sync first); without one, once it is stored. The
// store write runs on a context detached from ctx's cancellation (bounded
// by WriteTimeout): an action that happened must be recorded even when its
// caller hung up in the meantime. Failures are logged as well as returned.
func (l *Log) Record(ctx context.Context, e Entry) error {
	_, err := l.append(ctx, e, false)
	return err
}

// Append is Record returning the stored row: with a journal it also waits
// for the flusher to store it.
func (l *Log) Append(ctx context.Context, e Entry) (store.AuditRecord, error) {
	return l.append(ctx, e, true)
}

func (l *Log) append(ctx context.Context, e Entry, wait bool) (store.AuditRecord, error) {
	ts := e.Time
	if ts.IsZero() {
		ts = l.now()
	}
	rec := store.AuditRecord{
		Time: ts, Actor: e.Actor, Action: e.Action, Game: e.Game, Env: e.Env, Function: e.Function,
		Payload: l.payload(e.Payload, e.SensitiveFields), Result: ResultOf(e.Err),
		DurationMs: e.Duration.Milliseconds(), RequestID: e.RequestID,
	}
	var (
		out store.AuditRecord
		err error
	)
	storable(&rec)
	if l.jr != nil {
		out, err = l.journalRecord(ctx, rec, wait)
	} else {
		out, err = l.commit(ctx, rec)
	}
	if err != nil {
		l.log.ErrorContext(ctx, "audit record lost", "action", e.Action, "actor", e.Actor,
			"game", e.Game, "env", e.Env, "function", e.Function, "result", rec.Result, "err", err)
		return store.AuditRecord{}, fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return out, nil
}

// commit appends rec with group commit: the first caller to find no write
// in progress writes everything queued (its own entry included) in one
// transaction; callers arriving meanwhile queue and wait, and one of them
// writes the next batch. Every caller returns only once its row is stored.
func (l *Log) commit(ctx context.Context, rec store.AuditRecord) (store.AuditRecord, error) {
	p := &pendingRecord{rec: rec, done: make(chan struct{}), lead: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	leader := !l.busy
	l.busy = true
	l.mu.Unlock()
	if !leader {
		select {
		case <-p.done:
			return p.result()
		case <-p.lead:
		}
	}
	l.writeBatch(ctx)
	<-p.done
	return p.result()
}

// result is what the waiter of p gets once done is closed.
func (p *pendingRecord) result() (store.AuditRecord, error) {
	if p.err != nil {
		return store.AuditRecord{}, p.err
	}
	return p.rec, nil
}

// writeBatch writes the queued entries (up to maxAuditBatch) and hands the
// leadership to the next waiter, if any.
func (l *Log) writeBatch(ctx context.Context) {
	l.mu.Lock()
	n := min(len(l.queue), maxAuditBatch)
	batch := append([]*pendingRecord(nil), l.queue[:n]...)
	l.queue = append(l.queue[:0], l.queue[n:]...)
	l.mu.Unlock()

	recs := make([]store.AuditRecord, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.writeTimeout)
	began := time.Now()
	out, err := l.store.Audit().AppendBatch(wctx, recs, Hash)
	l.metrics.AuditCommit(len(recs), time.Since(began), err)
	cancel()
	for i, p := range batch {
		if err != nil {
			p.err = err
		} else {
			p.rec = out[i]
		}
		close(p.done)
	}

	l.mu.Lock()
	if len(l.queue) == 0 {
		l.busy = false
	} else {
		close(l.queue[0].lead)
	}
	l.mu.Unlock()
}

// payload encodes, masks and caps an entry's payload as JSON text.
func (l *Log) payload(p any, sensitive []string) string {
	var (
		raw   []byte
		err   error
		valid bool // raw is JSON by construction
	)
	switch v := p.(type) {
	case nil:
		raw = []byte("{}")
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case *structpb.Struct: // an invocation's payload: the common case
		raw, err = structjson.AppendStruct(make([]byte, 0, 256), v)
		valid = true
	case proto.Message:
		raw, err = protojson.Marshal(v)
	default:
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return `{"_unencodable":true}`
	}
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	if len(sensitive) > 0 {
		raw = Mask(raw, sensitive)
	} else if !valid && !json.Valid(raw) {
		return `{"_invalid_json":true}`
	}
	return string(Truncate(raw, l.maxPayload))
}

// Filter selects rows for List; empty fields match everything.
type Filter struct {
	Game, Env, Actor, Function, Action string
	From, To                           time.Time
	PageSize                           int
	PageToken                          string
}

// List returns rows matching f, newest first, and the next page token. The
// caller needs audit:read on the filter's scope: a filter without a game
// reads every game, so it needs audit:read on "*".
func (l *Log) List(ctx context.Context, p principal.Principal, f Filter) ([]store.AuditRecord, string, error) {
	if err := rbac.Check(p, rbac.AuditRead, f.Game, f.Env, f.Function); err != nil {
		return nil, "", err
	}
	if err := l.Sync(ctx); err != nil {
		return nil, "", err
	}
	return l.store.Audit().List(ctx, store.AuditFilter{Game: f.Game, Env: f.Env, Actor: f.Actor, Function: f.Function,
		Action: f.Action, From: f.From, To: f.To, PageSize: f.PageSize, PageToken: f.PageToken})
}
