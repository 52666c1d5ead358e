package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/croupier/croupier/internal/store"
)

// hashVersion prefixes the canonical encoding so that a future change of
// the encoding cannot collide with rows hashed the old way.
const hashVersion = "croupier-audit-v1"

// Hash is the chain hash of r: hex SHA-256 over a canonical encoding of
// every field but Hash itself — id, ts_ms, actor, action, game, env,
// function, payload, result, duration_ms, request_id and prev_hash, in that
// order. Each field is written as its decimal byte length, ':', the bytes
// and ','; the length prefixes make the encoding unambiguous, so no two
// different rows encode alike whatever bytes their fields contain.
func Hash(r *store.AuditRecord) string {
	h := sha256.New()
	var buf []byte
	put := func(s string) {
		buf = strconv.AppendInt(buf[:0], int64(len(s)), 10)
		buf = append(buf, ':')
		buf = append(buf, s...)
		buf = append(buf, ',')
		_, _ = h.Write(buf)
	}
	put(hashVersion)
	put(strconv.FormatInt(r.ID, 10))
	put(strconv.FormatInt(r.Time.UnixMilli(), 10))
	put(r.Actor)
	put(r.Action)
	put(r.Game)
	put(r.Env)
	put(r.Function)
	put(r.Payload)
	put(r.Result)
	put(strconv.FormatInt(r.DurationMs, 10))
	put(r.RequestID)
	put(r.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}
