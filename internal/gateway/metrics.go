package gateway

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/croupier/croupier/api/netsvr"
)

// Metrics items (netsvr's numbering).
const (
	metricConnOpen = iota
	metricConnClose
	metricHeartbeat
	metricTransferCount
	metricTransferBytes
	metricWriteCount
	metricWriteBytes
	metricItems
)

// metricTick is how often the 1/5/15-minute rates are updated.
const metricTick = 5 * time.Second

// meter counts events and keeps exponentially weighted 1/5/15-minute rates
// (per second, updated every metricTick) and the largest value each rate
// and the mean rate have reached. The hot path is one atomic add.
type meter struct {
	count     atomic.Int64
	uncounted atomic.Int64

	mu                    sync.Mutex
	started               bool
	rates, maxes          [3]float64 // 1, 5, 15 minutes
	meanRate, meanRateMax float64
}

func (m *meter) add(n int64) {
	m.count.Add(n)
	m.uncounted.Add(n)
}

var ewmaAlpha = [3]float64{
	1 - math.Exp(-metricTick.Seconds()/60),
	1 - math.Exp(-metricTick.Seconds()/60/5),
	1 - math.Exp(-metricTick.Seconds()/60/15),
}

// tick folds the events since the last tick into the rates; elapsed is the
// time since the gateway started.
func (m *meter) tick(elapsed time.Duration) {
	instant := float64(m.uncounted.Swap(0)) / metricTick.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.rates {
		if m.started {
			m.rates[i] += ewmaAlpha[i] * (instant - m.rates[i])
		} else {
			m.rates[i] = instant
		}
		m.maxes[i] = max(m.maxes[i], m.rates[i])
	}
	m.started = true
	m.meanRate = float64(m.count.Load()) / elapsed.Seconds()
	m.meanRateMax = max(m.meanRateMax, m.meanRate)
}

func (m *meter) item(elapsed time.Duration) *netsvr.MetricsResp_Item {
	count := m.count.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	mean := 0.0
	if s := elapsed.Seconds(); s > 0 {
		mean = float64(count) / s
	}
	return &netsvr.MetricsResp_Item{
		Count:       count,
		MeanRate:    float32(mean),
		MeanRateMax: float32(max(m.meanRateMax, mean)),
		Rate1:       float32(m.rates[0]),
		Rate1Max:    float32(m.maxes[0]),
		Rate5:       float32(m.rates[1]),
		Rate5Max:    float32(m.maxes[1]),
		Rate15:      float32(m.rates[2]),
		Rate15Max:   float32(m.maxes[2]),
	}
}

// metrics are the gateway's meters.
type metrics struct {
	start  time.Time
	meters [metricItems]meter
}

// run ticks the meters until done closes (owned by the Gateway).
func (ms *metrics) run(done <-chan struct{}) {
	t := time.NewTicker(metricTick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			for i := range ms.meters {
				ms.meters[i].tick(now.Sub(ms.start))
			}
		}
	}
}

func (ms *metrics) resp(serverID int, items []int) *netsvr.MetricsResp {
	elapsed := time.Since(ms.start)
	out := &netsvr.MetricsResp{ServerId: int32(serverID), Items: map[int32]*netsvr.MetricsResp_Item{}}
	for _, i := range items {
		out.Items[int32(i)] = ms.meters[i].item(elapsed)
	}
	return out
}
