package gse

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// callMeta is the metadata every GSE call carries.
type callMeta struct {
	pid       int
	requestID string
}

// maxRequestIDLen bounds requestId; GSE's samples send a 36-byte UUID.
const maxRequestIDLen = 128

// parseMeta reads pid and requestId. gRPC lower-cases metadata keys on the
// wire, and metadata.MD.Get lower-cases its argument, so "requestId",
// "requestid" and "RequestId" all find the value. The message says which
// entry is missing or malformed.
func parseMeta(ctx context.Context) (callMeta, string) {
	md, _ := metadata.FromIncomingContext(ctx)
	pids := md.Get("pid")
	if len(pids) == 0 || pids[0] == "" {
		return callMeta{}, "missing gRPC metadata \"pid\": every GSE call must carry the caller's process id (see GSE's getContext)"
	}
	pid, err := strconv.Atoi(pids[0])
	if err != nil || pid <= 0 || pid > maxPID {
		return callMeta{}, "malformed gRPC metadata \"pid\": " + strconv.Quote(pids[0]) + " is not a positive integer process id"
	}
	ids := md.Get("requestId")
	if len(ids) == 0 || ids[0] == "" {
		return callMeta{}, "missing gRPC metadata \"requestId\": every GSE call must carry a unique request id (GSE's samples use a UUID)"
	}
	if len(ids[0]) > maxRequestIDLen {
		return callMeta{}, "malformed gRPC metadata \"requestId\": longer than " + strconv.Itoa(maxRequestIDLen) + " bytes"
	}
	return callMeta{pid: pid, requestID: ids[0]}, ""
}

// Retries of a call carry the same requestId; the agent answers them from
// a bounded cache of recent answers instead of running the call again (an
// AcceptPlayerSession retried after a lost answer must not fail as
// "already ACTIVE").
const (
	dedupeSize = 4096
	dedupeTTL  = 5 * time.Minute
)

type dedupeEntry struct {
	key  string
	at   time.Time
	resp proto.Message
}

// dedupe is a FIFO-bounded map of answered requests.
type dedupe struct {
	mu      sync.Mutex
	size    int
	ttl     time.Duration
	entries map[string]*dedupeEntry
	order   []*dedupeEntry
}

func newDedupe(size int, ttl time.Duration) *dedupe {
	return &dedupe{size: size, ttl: ttl, entries: make(map[string]*dedupeEntry, size)}
}

func dedupeKey(m callMeta, method string) string {
	return strconv.Itoa(m.pid) + "\x00" + method + "\x00" + m.requestID
}

func (d *dedupe) get(key string, now time.Time) (proto.Message, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[key]
	if !ok || now.Sub(e.at) > d.ttl {
		return nil, false
	}
	return e.resp, true
}

func (d *dedupe) put(key string, resp proto.Message, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.entries[key]; ok {
		return
	}
	e := &dedupeEntry{key: key, at: now, resp: resp}
	d.entries[key] = e
	d.order = append(d.order, e)
	for len(d.order) > d.size {
		old := d.order[0]
		d.order[0] = nil
		d.order = d.order[1:]
		if d.entries[old.key] == old {
			delete(d.entries, old.key)
		}
	}
}

// maxPID is Linux's largest pid_max.
const maxPID = 1 << 22
