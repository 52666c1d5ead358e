package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"
)

// maxCustomUniqIDLen bounds a client-chosen uniqId (netsvr's limit).
const maxCustomUniqIDLen = 128

// maxTokens bounds the outstanding custom-uniqId tokens; beyond it (after
// dropping expired ones) ConnOpenCustomUniqIdToken answers an empty token.
const maxTokens = 1 << 20

// tokens holds the one-time tokens of ConnOpenCustomUniqIdToken.
type tokens struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]time.Time // token → expiry
}

func newTokens(ttl time.Duration) *tokens { return &tokens{ttl: ttl, m: map[string]time.Time{}} }

// issue returns a new token, or "" when too many are outstanding.
func (t *tokens) issue(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= 1024 {
		for k, exp := range t.m {
			if now.After(exp) {
				delete(t.m, k)
			}
		}
	}
	if len(t.m) >= maxTokens {
		return ""
	}
	t.m[tok] = now.Add(t.ttl)
	return tok
}

// consume reports whether tok is outstanding and unexpired, and spends it.
func (t *tokens) consume(tok string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.m[tok]
	if !ok {
		return false
	}
	delete(t.m, tok)
	return !now.After(exp)
}

// customUniqID returns the uniqId a client asked for in its query, "" when
// it asked for none, and ok=false when the request is invalid (bad or
// spent token, id too long or not UTF-8). A uniqId travels in proto3
// string fields (ConnOpen, Transfer, UniqIdList, ConnInfo, ...), which
// must be UTF-8, so an id that is not could be neither reported nor
// listed.
func (g *Gateway) customUniqID(query string) (id string, ok bool) {
	if g.cfg.CustomUniqIDKey == "" {
		return "", true
	}
	// As netsvr reads it (r.URL.Query()): a malformed pair elsewhere in
	// the query (a ";", a bad %-escape) is skipped, not a refusal.
	q, _ := url.ParseQuery(query)
	if !q.Has(g.cfg.CustomUniqIDKey) {
		return "", true
	}
	id = q.Get(g.cfg.CustomUniqIDKey)
	if id == "" || len(id) > maxCustomUniqIDLen || !utf8.ValidString(id) {
		return "", false
	}
	if !g.tokens.consume(q.Get(g.cfg.CustomUniqIDTokenKey), time.Now()) {
		return "", false
	}
	return id, true
}
