// Package idempotency is the one implementation of idempotency keys, shared
// by InvokeFunction and InvokeJob: the key's limits, the request hash, the
// per-caller scope, the reclaim rule for claims left by a dead server, and
// how an outcome — a response or an error — is stored and replayed.
//
// The rule that matters: once the request may have reached a game server,
// its outcome sticks for the window, errors included (as payment APIs do).
// Only a failure that provably happened before anything was sent releases
// the key so a retry runs.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/store"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// MaxKeyLen is the longest idempotency key accepted, in bytes.
const MaxKeyLen = store.MaxIdempotencyKeyLen

// CheckKey refuses keys that are too long or not printable ASCII. An empty
// key (no idempotency) passes. The message quotes at most a short prefix.
func CheckKey(key string) error {
	if len(key) > MaxKeyLen {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			fmt.Sprintf("options.idempotency_key is %d bytes; the limit is %d (a UUID fits)", len(key), MaxKeyLen),
			"field", "options.idempotency_key", "max_bytes", fmt.Sprint(MaxKeyLen))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
				fmt.Sprintf("options.idempotency_key must be printable ASCII without spaces; byte %d is 0x%02x", i, c),
				"field", "options.idempotency_key")
		}
	}
	return nil
}

// Store is the persistence of keys (store.Idempotency).
type Store interface {
	Begin(ctx context.Context, scopeKey, key, requestHash string, ttl time.Duration) (*store.Record, bool, error)
	Complete(ctx context.Context, scopeKey, key string, response []byte) error
	Release(ctx context.Context, scopeKey, key string) error
}

// Config tunes a Keeper.
type Config struct {
	// Window is how long an outcome is kept.
	Window time.Duration
	// StaleAfter is the age after which a pending claim belongs to a call
	// that cannot still be running (its server died mid-call), so the next
	// request takes the key over. Set it above the longest a call runs.
	StaleAfter time.Duration
	// Recover, when set, is asked before a stale claim is taken over:
	// whether the request that claimed the key at claimedAt got as far as
	// producing its outcome (e.g. the job row was stored, then the server
	// died before recording it under the key). A found outcome is stored
	// and replayed instead of running the request again.
	Recover func(ctx context.Context, req Request, claimedAt time.Time) (outcome proto.Message, found bool, err error)
	Logger  *slog.Logger
}

// Keeper runs requests under idempotency keys.
type Keeper struct {
	cfg   Config
	store Store
	log   *slog.Logger
}

// New returns a Keeper over st.
func New(cfg Config, st Store) *Keeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Keeper{cfg: cfg, store: st, log: cfg.Logger}
}

// Request is what a key is used for. Op, Caller, Game, Env and Function
// scope the key: the same key from another caller (or on another function,
// or for a job instead of a call) is another key. Routing and payload are
// the request's identity under the key: a retry that changes them is a
// misuse of the key.
type Request struct {
	Op                  string // "invoke", "job" or "approval"
	Caller              string // the principal's identity, e.g. "user:alice"
	Game, Env, Function string
	Options             *croupierv1.InvokeOptions
	Payload             *structpb.Struct
}

// scopeKey puts the caller last: game, env and function ids hold no "/",
// so two different requests never build the same scope.
func (r Request) scopeKey() string {
	return r.Op + "/" + r.Game + "/" + r.Env + "/" + r.Function + "/" + r.Caller
}

// RoutingMode is the options' routing mode with the default spelled out, so
// "" and "lb" are the same request.
func RoutingMode(o *croupierv1.InvokeOptions) string {
	if m := o.GetRoutingMode(); m != "" {
		return m
	}
	return "lb"
}

// Hash identifies what a key was first used for: function, routing and the
// payload as canonical JSON (encoding/json sorts map keys).
func (r Request) Hash() (string, error) {
	b, err := json.Marshal(r.Payload.AsMap())
	if err != nil {
		return "", err
	}
	h := sha256.New()
	o := r.Options
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s", r.Function, RoutingMode(o), o.GetTargetAgent(), o.GetHashKey(), b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Claim is the right to run a request under its key. Exactly one of
// Complete, Fail or Release ends it.
type Claim struct {
	k        *Keeper
	scope    string
	key      string
	Replayed bool // the outcome was replayed into the response; nothing to run
}

// Begin claims req's key. With no key it returns a claim whose methods do
// nothing. When a previous request with the key finished, it replays its
// outcome: a stored response is decoded into resp and the claim is marked
// Replayed; a stored error is returned as the error. A different request
// under the key is IDEMPOTENCY_KEY_REUSED, one still running
// IDEMPOTENCY_KEY_IN_PROGRESS.
func (k *Keeper) Begin(ctx context.Context, req Request, resp proto.Message) (*Claim, error) {
	key := req.Options.GetIdempotencyKey()
	if key == "" {
		return &Claim{}, nil
	}
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	hash, err := req.Hash()
	if err != nil {
		return nil, apierr.Internal(k.log, err)
	}
	scope := req.scopeKey()
	rec, created, err := k.store.Begin(ctx, scope, key, hash, k.cfg.Window)
	if err == nil && !created && rec.State != store.RecordDone && time.Since(rec.CreatedAt) > k.cfg.StaleAfter {
		rec, created, err = k.takeOver(ctx, req, rec, hash)
	}
	if err != nil {
		return nil, k.internal(err)
	}
	if created {
		return &Claim{k: k, scope: scope, key: key}, nil
	}
	if rec.RequestHash != hash {
		return nil, apierr.New(codes.AlreadyExists, apierr.CodeIdempotencyConflict,
			"idempotency key "+key+" was already used with a different payload or routing; use a new key", "idempotency_key", key)
	}
	if rec.State != store.RecordDone {
		return nil, apierr.New(codes.Aborted, apierr.CodeIdempotencyPending,
			"a request with idempotency key "+key+" is still running; retry shortly to get its result", "idempotency_key", key)
	}
	if err := k.replay(rec, resp); err != nil {
		return nil, err
	}
	return &Claim{Replayed: true}, nil
}

// takeOver handles a pending claim that cannot belong to a running call:
// it stores the outcome Recover finds, or frees the key and claims it.
func (k *Keeper) takeOver(ctx context.Context, req Request, rec *store.Record, hash string) (*store.Record, bool, error) {
	if k.cfg.Recover != nil {
		outcome, found, err := k.cfg.Recover(ctx, req, rec.CreatedAt)
		if err != nil {
			return nil, false, err
		}
		if found {
			a, err := anypb.New(outcome)
			if err != nil {
				return nil, false, err
			}
			b, err := proto.Marshal(a)
			if err != nil {
				return nil, false, err
			}
			k.log.Warn("completing stale idempotency key from the stored outcome", "key", rec.Key, "scope", rec.ScopeKey, "claimed_at", rec.CreatedAt)
			if err := k.store.Complete(ctx, rec.ScopeKey, rec.Key, b); err != nil {
				return nil, false, err
			}
			rec.State, rec.Response = store.RecordDone, b
			return rec, false, nil
		}
	}
	k.log.Warn("reclaiming stale idempotency key", "key", rec.Key, "scope", rec.ScopeKey, "claimed_at", rec.CreatedAt)
	if err := k.store.Release(ctx, rec.ScopeKey, rec.Key); err != nil {
		return nil, false, err
	}
	return k.store.Begin(ctx, rec.ScopeKey, rec.Key, hash, k.cfg.Window)
}

// replay decodes a stored outcome into resp, or returns the stored error.
func (k *Keeper) replay(rec *store.Record, resp proto.Message) error {
	var outcome anypb.Any
	if err := proto.Unmarshal(rec.Response, &outcome); err != nil {
		return apierr.Internal(k.log, fmt.Errorf("decode stored outcome of idempotency key %s: %w", rec.Key, err))
	}
	if outcome.MessageIs(&spb.Status{}) {
		var st spb.Status
		if err := outcome.UnmarshalTo(&st); err != nil {
			return apierr.Internal(k.log, fmt.Errorf("decode stored error of idempotency key %s: %w", rec.Key, err))
		}
		st.Message = "idempotency key " + rec.Key + " already ran and failed after it was sent (use a new key to run it again): " + st.Message
		return status.ErrorProto(&st)
	}
	if err := outcome.UnmarshalTo(resp); err != nil {
		return apierr.Internal(k.log, fmt.Errorf("decode stored response of idempotency key %s: %w", rec.Key, err))
	}
	return nil
}

// Complete stores resp as the outcome of the claimed request.
func (c *Claim) Complete(ctx context.Context, resp proto.Message) {
	if c.k == nil {
		return
	}
	a, err := anypb.New(resp)
	if err == nil {
		c.store(ctx, a)
		return
	}
	c.k.log.Error("encode idempotent response", "key", c.key, "err", err)
	c.Release(ctx)
}

// Fail stores err as the outcome: the request may have reached a game
// server, so a retry must not run it again.
func (c *Claim) Fail(ctx context.Context, err error) {
	if c.k == nil {
		return
	}
	a, aerr := anypb.New(status.Convert(err).Proto())
	if aerr != nil {
		c.k.log.Error("encode idempotent error", "key", c.key, "err", aerr)
		return // the claim stays pending until StaleAfter: never run twice
	}
	c.store(ctx, a)
}

func (c *Claim) store(ctx context.Context, a *anypb.Any) {
	b, err := proto.Marshal(a)
	if err == nil {
		err = c.k.store.Complete(context.WithoutCancel(ctx), c.scope, c.key, b)
	}
	if err != nil {
		c.k.log.Error("store idempotent outcome", "key", c.key, "err", err)
	}
}

// Release frees the key so a retry runs: only for failures that happened
// before anything was sent.
func (c *Claim) Release(ctx context.Context) {
	if c.k == nil {
		return
	}
	if err := c.k.store.Release(context.WithoutCancel(ctx), c.scope, c.key); err != nil {
		c.k.log.Error("release idempotency key", "key", c.key, "err", err)
	}
}

func (k *Keeper) internal(err error) error {
	return storeerr.ToStatus(context.Background(), k.log, err)
}

// NotSent reports whether err says the request never left this process —
// the transport marks such errors with a NotSent() bool method (the tunnel
// does for an agent that is not connected, a full queue, or a deadline
// reached before sending). Only those failures release a key.
func NotSent(err error) bool {
	var ns interface{ NotSent() bool }
	return errors.As(err, &ns) && ns.NotSent()
}

// MarkNotSent marks err as a failure that happened before the request left
// this process, for NotSent.
func MarkNotSent(err error) error { return notSentError{err} }

type notSentError struct{ err error }

func (e notSentError) Error() string              { return e.err.Error() }
func (e notSentError) Unwrap() error              { return e.err }
func (e notSentError) GRPCStatus() *status.Status { return status.Convert(e.err) }
func (e notSentError) NotSent() bool              { return true }
