package gateway

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/croupier/croupier/api/netsvr"
)

// limits are the Limit groups: named sets of workerIds, each a token bucket
// of concurrency client messages per second. Messages over the limit are
// dropped.
type limits struct {
	mu       sync.Mutex
	groups   []*limitGroup // in configuration order
	byWorker map[int32]*limitGroup
}

type limitGroup struct {
	name        string
	concurrency int32
	workerIDs   []int32
	tokens      float64
	last        time.Time
}

// parseLimit reads a limit_groups entry: "name=concurrency:w1,w2,...".
func parseLimit(s string) (*limitGroup, error) {
	name, rest, ok := strings.Cut(s, "=")
	conc, ids, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || name == "" {
		return nil, fmt.Errorf("limit group %q: want name=concurrency:workerId,workerId (e.g. chat=100:1,2)", s)
	}
	n, err := strconv.Atoi(conc)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("limit group %q: concurrency %q must be a positive integer (messages per second)", s, conc)
	}
	lg := &limitGroup{name: name, concurrency: int32(n)}
	for _, f := range strings.Split(ids, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 || w > maxWorkerID {
			return nil, fmt.Errorf("limit group %q: workerId %q must be 1–999", s, f)
		}
		lg.workerIDs = append(lg.workerIDs, int32(w))
	}
	return lg, nil
}

func newLimits(specs []string) (*limits, error) {
	l := &limits{byWorker: map[int32]*limitGroup{}}
	names := map[string]bool{}
	for _, s := range specs {
		lg, err := parseLimit(s)
		if err != nil {
			return nil, err
		}
		if names[lg.name] {
			return nil, fmt.Errorf("limit group %q: name used twice", lg.name)
		}
		names[lg.name] = true
		for _, w := range lg.workerIDs {
			if other := l.byWorker[w]; other != nil {
				return nil, fmt.Errorf("limit group %q: workerId %d is already in group %q", lg.name, w, other.name)
			}
			l.byWorker[w] = lg
		}
		lg.tokens = float64(lg.concurrency)
		l.groups = append(l.groups, lg)
	}
	return l, nil
}

// allow takes a token from workerID's group; workers in no group are not
// limited.
func (l *limits) allow(workerID int32, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lg := l.byWorker[workerID]
	if lg == nil {
		return true
	}
	if !lg.last.IsZero() {
		lg.tokens = min(float64(lg.concurrency), lg.tokens+now.Sub(lg.last).Seconds()*float64(lg.concurrency))
	}
	lg.last = now
	if lg.tokens < 1 {
		return false
	}
	lg.tokens--
	return true
}

// update applies a LimitReq (unknown names and concurrency < 1 are
// ignored, as in netsvr) and returns the configuration in force.
func (l *limits) update(req *netsvr.LimitReq) []*netsvr.LimitResp_Item {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, it := range req.Items {
		if it.Concurrency < 1 {
			continue
		}
		for _, lg := range l.groups {
			if lg.name == it.Name {
				lg.concurrency = it.Concurrency
				lg.tokens = min(lg.tokens, float64(it.Concurrency))
			}
		}
	}
	out := make([]*netsvr.LimitResp_Item, 0, len(l.groups))
	for _, lg := range l.groups {
		ids := append([]int32(nil), lg.workerIDs...)
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		out = append(out, &netsvr.LimitResp_Item{Name: lg.name, Concurrency: lg.concurrency, WorkerIds: ids})
	}
	return out
}
