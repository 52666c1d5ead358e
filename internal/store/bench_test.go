package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

// BenchmarkAppendEvents measures event throughput of AppendEvents: one
// writer appending batches to one job ("serial"), and concurrent writers
// each appending to their own job ("parallel"). It reports events/s.
//
//	go test -run '^$' -bench AppendEvents -benchtime 3s ./internal/store/
func BenchmarkAppendEvents(b *testing.B) {
	for _, driver := range []string{store.DriverSQLite, store.DriverPostgres} {
		b.Run(driver, func(b *testing.B) {
			for _, batch := range []int{100, 500} {
				b.Run(fmt.Sprintf("serial/batch=%d", batch), func(b *testing.B) {
					s := storetest.Open(b, driver)
					benchSerial(b, s, batch)
				})
				b.Run(fmt.Sprintf("parallel/batch=%d", batch), func(b *testing.B) {
					s := storetest.Open(b, driver)
					benchParallel(b, s, batch)
				})
			}
		})
	}
}

// benchEvents builds a batch shaped like real job progress: a short message,
// a progress value and a small JSON document.
func benchEvents(batch int, firstSeq int64) []store.Event {
	evs := make([]store.Event, batch)
	now := time.Now().UnixMilli()
	for i := range evs {
		seq := firstSeq + int64(i)
		evs[i] = store.Event{Seq: seq, Type: 1, Message: "processed chunk " + strings.Repeat("x", 16),
			Progress: float64(i) / float64(batch), TimestampMs: now,
			Data: []byte(fmt.Sprintf(`{"seq":%d,"items":42,"shard":"eu-1"}`, seq))}
	}
	return evs
}

func benchSerial(b *testing.B, s *store.Store, batch int) {
	ctx := context.Background()
	if err := s.Jobs().Create(ctx, newJob("bench", time.Now())); err != nil {
		b.Fatal(err)
	}
	seq := int64(1)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		evs := benchEvents(batch, seq)
		b.StartTimer()
		if err := s.Jobs().AppendEvents(ctx, "bench", evs); err != nil {
			b.Fatal(err)
		}
		seq += int64(batch)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

func benchParallel(b *testing.B, s *store.Store, batch int) {
	ctx := context.Background()
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("bench-%d", next.Add(1))
		if err := s.Jobs().Create(ctx, newJob(id, time.Now())); err != nil {
			b.Error(err)
			return
		}
		seq := int64(1)
		for pb.Next() {
			if err := s.Jobs().AppendEvents(ctx, id, benchEvents(batch, seq)); err != nil {
				b.Error(err)
				return
			}
			seq += int64(batch)
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAuditAppendJournaled measures what the audit flusher pays per
// row: batches of 16, 64 and 256 invocation rows, each one durable
// transaction (as the flusher writes them; it writes up to 256). It reports
// the process's CPU time per row, which other load on the machine changes
// far less than wall-clock time.
//
//	go test -run '^$' -bench AuditAppendJournaled -benchtime 100x ./internal/store/
func BenchmarkAuditAppendJournaled(b *testing.B) {
	for _, batch := range []int{16, 64, 256} {
		b.Run(fmt.Sprintf("rows=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s := storetest.SQLite(b)
			recs := make([]store.AuditRecord, batch)
			for i := range recs {
				recs[i] = store.AuditRecord{Time: time.Now(), Actor: "operator:bench", Action: "function.invoke", Game: "demo", Env: "dev",
					Function: "player.get", Payload: `{"player_id":"p42"}`, Result: "OK", DurationMs: 1, RequestID: "req-0123456789"}
			}
			seal := func(r *store.AuditRecord) string { return fmt.Sprintf("%064d", r.ID) }
			seq := int64(0)
			cpu0 := processCPU()
			b.ResetTimer()
			for b.Loop() {
				seq += int64(batch)
				if _, err := s.Audit().AppendJournaled(ctx, store.AuditJournalPos{ID: "bench", Seq: seq}, recs, seal); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*batch), "cpu-ns/row")
		})
	}
}

// processCPU is the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
