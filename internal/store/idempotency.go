package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// RecordState is the state of an idempotency record.
type RecordState string

const (
	// RecordPending: a request holding the key is running.
	RecordPending RecordState = "pending"
	// RecordDone: the request finished; Response holds its outcome.
	RecordDone RecordState = "done"
)

// Record is the stored outcome (or the in-flight claim) of a request made with
// an idempotency key.
type Record struct {
	ScopeKey string
	Key      string
	State    RecordState
	// RequestHash identifies the request that claimed the key; a retry with
	// a different hash is a misuse of the key (the service answers it with a
	// conflict instead of the stored response).
	RequestHash string
	// Response is what Complete stored; nil while pending.
	Response  []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Idempotency stores idempotency records. Keys are namespaced by a scope key
// the caller builds (e.g. "game/env/function/actor"), so equal keys from
// different callers never meet.
type Idempotency struct{ s *Store }

// MaxIdempotencyKeyLen bounds a stored key, in bytes.
const MaxIdempotencyKeyLen = 128

// maxScopeKeyLen bounds a stored scope (op, game, env, function, caller).
const maxScopeKeyLen = 1024

// beginAttempts bounds Begin's claim-or-read loop: the loop repeats only when
// the record it lost to vanished (released or pruned) before it could read
// it, which takes a racing Release per iteration.
const beginAttempts = 5

// Begin claims the key atomically. If the key is free — absent, or present
// but expired — it stores a pending record and returns it with created=true;
// exactly one of any number of concurrent Begins on a key gets created=true.
// Otherwise it returns the existing record (pending or done) with
// created=false, and the caller either replays Response or reports that the
// request is still running.
func (x *Idempotency) Begin(ctx context.Context, scopeKey, key, requestHash string, ttl time.Duration) (*Record, bool, error) {
	if scopeKey == "" || key == "" {
		return nil, false, invalid("idempotency scope key and key must not be empty")
	}
	if len(key) > MaxIdempotencyKeyLen || len(scopeKey) > maxScopeKeyLen {
		// The service refuses such keys first; this keeps the table bounded
		// whoever calls.
		return nil, false, invalid("idempotency key of %d bytes or scope of %d bytes exceeds %d / %d",
			len(key), len(scopeKey), MaxIdempotencyKeyLen, maxScopeKeyLen)
	}
	if ttl <= 0 {
		return nil, false, invalid("idempotency ttl must be positive, got %v", ttl)
	}
	for range beginAttempts {
		now := x.s.now()
		rec := &Record{
			ScopeKey: scopeKey, Key: key, State: RecordPending, RequestHash: requestHash,
			CreatedAt: msToTime(now.UnixMilli()), ExpiresAt: msToTime(now.Add(ttl).UnixMilli()),
		}
		// The conditional upsert takes over an expired record in the same
		// statement, so "expired but not yet pruned" behaves like "absent".
		res, err := x.s.db.ExecContext(ctx,
			`INSERT INTO idempotency_keys (scope_key, idem_key, request_hash, state, response, created_at, expires_at)
			 VALUES ($1, $2, $3, 'pending', NULL, $4, $5)
			 ON CONFLICT (scope_key, idem_key) DO UPDATE SET
			   request_hash = excluded.request_hash, state = excluded.state, response = NULL,
			   created_at = excluded.created_at, expires_at = excluded.expires_at
			 WHERE idempotency_keys.expires_at <= $4`,
			scopeKey, key, requestHash, rec.CreatedAt.UnixMilli(), rec.ExpiresAt.UnixMilli())
		if err != nil {
			return nil, false, dbErr(ctx, "claim idempotency key", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, false, dbErr(ctx, "claim idempotency key", err)
		}
		if n == 1 {
			return rec, true, nil
		}
		existing, err := x.Get(ctx, scopeKey, key)
		if errors.Is(err, ErrNotFound) {
			continue // released between our insert and read: claim again
		}
		if err != nil {
			return nil, false, err
		}
		return existing, false, nil
	}
	return nil, false, &Error{Op: "claim idempotency key", Kind: ErrUnavailable,
		cause: errors.New("the key was claimed and released repeatedly while this request tried to claim it")}
}

// Get returns the record for the key, or ErrNotFound. Expired records that
// were not pruned yet are still returned; check ExpiresAt.
func (x *Idempotency) Get(ctx context.Context, scopeKey, key string) (*Record, error) {
	rec := &Record{ScopeKey: scopeKey, Key: key}
	var state string
	var created, expires int64
	err := x.s.db.QueryRowContext(ctx,
		`SELECT request_hash, state, response, created_at, expires_at
		 FROM idempotency_keys WHERE scope_key = $1 AND idem_key = $2`, scopeKey, key).
		Scan(&rec.RequestHash, &state, &rec.Response, &created, &expires)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound("idempotency key %q", key)
		}
		return nil, dbErr(ctx, "read idempotency key", err)
	}
	rec.State = RecordState(state)
	if rec.State == RecordDone && rec.Response == nil {
		rec.Response = []byte{} // SQLite reads an empty BLOB back as NULL
	}
	rec.CreatedAt, rec.ExpiresAt = msToTime(created), msToTime(expires)
	return rec, nil
}

// Complete stores the response of the request that holds the key and marks
// the record done; later Begins on the key return it. The expiry set by
// Begin is kept. ErrNotFound if there is no record; ErrConflict if it is
// already done.
func (x *Idempotency) Complete(ctx context.Context, scopeKey, key string, response []byte) error {
	if response == nil {
		response = []byte{} // done records always have a response, possibly empty
	}
	res, err := x.s.db.ExecContext(ctx,
		`UPDATE idempotency_keys SET state = 'done', response = $3
		 WHERE scope_key = $1 AND idem_key = $2 AND state = 'pending'`, scopeKey, key, response)
	if err != nil {
		return dbErr(ctx, "complete idempotency key", err)
	}
	return x.explainMiss(ctx, res, scopeKey, key, "complete")
}

// Release deletes a pending record so a retry can run: the service calls it
// when the platform (not the function) failed and nothing ran. ErrNotFound if
// there is no record; ErrConflict if it is done (a finished request is never
// forgotten before it expires).
//
// Release and Complete address the key, not the claim: if a pending record
// outlives its TTL and another request takes it over, the first request's
// Release or Complete acts on the new claim. Choose TTLs far longer than any
// request runs.
func (x *Idempotency) Release(ctx context.Context, scopeKey, key string) error {
	res, err := x.s.db.ExecContext(ctx,
		`DELETE FROM idempotency_keys WHERE scope_key = $1 AND idem_key = $2 AND state = 'pending'`,
		scopeKey, key)
	if err != nil {
		return dbErr(ctx, "release idempotency key", err)
	}
	return x.explainMiss(ctx, res, scopeKey, key, "release")
}

// explainMiss turns "no pending row matched" into ErrNotFound or ErrConflict.
func (x *Idempotency) explainMiss(ctx context.Context, res sql.Result, scopeKey, key, verb string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(ctx, verb+" idempotency key", err)
	}
	if n > 0 {
		return nil
	}
	rec, err := x.Get(ctx, scopeKey, key)
	if err != nil {
		return err
	}
	return conflict("%s idempotency key %q: record is %s", verb, key, rec.State)
}

// pruneBatch bounds how many rows one DELETE removes, so pruning a large
// backlog never holds SQLite's write lock for long.
const pruneBatch = 1000

// PruneExpired deletes records that expired at or before now and returns how
// many it deleted. It works in batches and stops early when ctx ends.
func (x *Idempotency) PruneExpired(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		res, err := x.s.db.ExecContext(ctx,
			`DELETE FROM idempotency_keys WHERE (scope_key, idem_key) IN (
			   SELECT scope_key, idem_key FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)`,
			now.UnixMilli(), pruneBatch)
		if err != nil {
			return total, dbErr(ctx, "prune idempotency keys", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, dbErr(ctx, "prune idempotency keys", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
