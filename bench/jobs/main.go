// Command jobs benchmarks the job event pipeline: one job emits N events
// (game server → agent → server → store) while W watchers stream them back.
// It runs the job once without watchers and once with them, checks that
// every watcher got every event in order, and prints events/s persisted and
// delivered and the job's slowdown with watchers.
//
//	go run ./bench/jobs [-events 100000] [-watchers 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/bench/internal/stack"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

func main() {
	events := flag.Int("events", 100000, "events the job emits (PROGRESS), plus START and DONE")
	watchers := flag.Int("watchers", 3, "concurrent watchers in the second run")
	flag.Parse()
	if err := run(*events, *watchers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, watchers int) error {
	ctx := context.Background()
	st, err := stack.Start(func(client *sdk.Client) error {
		return client.RegisterJob(&croupierv1.FunctionDescriptor{Id: "bench.emit", Semantics: &croupierv1.Semantics{LongRunning: true}},
			func(ctx context.Context, job *sdk.Job) (*structpb.Struct, error) {
				total := int(job.Payload.GetFields()["events"].GetNumberValue())
				for i := 1; i <= total; i++ {
					if err := job.Progress(float64(i)/float64(total), "tick"); err != nil {
						return nil, err
					}
				}
				return structpb.NewStruct(map[string]any{"emitted": float64(total)})
			})
	}, "bench.emit", stack.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	conn := st.Conn
	fc := croupierv1.NewFunctionServiceClient(conn)
	total := int64(n + 2) // START + n PROGRESS + DONE

	start := func() (string, time.Time, error) {
		pl, _ := structpb.NewStruct(map[string]any{"events": float64(n)})
		t0 := time.Now()
		r, err := fc.InvokeJob(ctx, &croupierv1.InvokeJobRequest{GameId: "demo", Env: "dev", FunctionId: "bench.emit", Payload: pl})
		if err != nil {
			return "", t0, err
		}
		return r.GetJobId(), t0, nil
	}
	waitDone := func(id string) error {
		for {
			r, err := fc.GetJob(ctx, &croupierv1.GetJobRequest{JobId: id})
			if err != nil {
				return err
			}
			if r.GetJob().GetStatus() == "completed" {
				if r.GetJob().GetLastSeq() != total {
					return fmt.Errorf("job stored %d events, want %d", r.GetJob().GetLastSeq(), total)
				}
				return nil
			}
			if r.GetJob().GetStatus() == "failed" || r.GetJob().GetStatus() == "canceled" {
				return fmt.Errorf("job %s: %s", r.GetJob().GetStatus(), r.GetJob().GetError())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Run 1: no watchers.
	id, t0, err := start()
	if err != nil {
		return err
	}
	if err := waitDone(id); err != nil {
		return err
	}
	alone := time.Since(t0)

	// Run 2: watchers attached from the start.
	id, t0, err = start()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	delivered := make([]time.Duration, watchers)
	errs := make([]error, watchers)
	for w := 0; w < watchers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream, err := fc.StreamJobEvents(ctx, &croupierv1.StreamJobEventsRequest{JobId: id})
			if err != nil {
				errs[w] = err
				return
			}
			var next int64 = 1
			for {
				ev, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					errs[w] = err
					return
				}
				if ev.GetSeq() != next {
					errs[w] = fmt.Errorf("watcher %d: got seq %d, want %d", w, ev.GetSeq(), next)
					return
				}
				next++
			}
			if next-1 != total {
				errs[w] = fmt.Errorf("watcher %d: got %d events, want %d", w, next-1, total)
				return
			}
			delivered[w] = time.Since(t0)
		}()
	}
	if err := waitDone(id); err != nil {
		return err
	}
	withWatchers := time.Since(t0)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	slowest := time.Duration(0)
	for _, d := range delivered {
		slowest = max(slowest, d)
	}
	fmt.Printf("store sqlite, %d events per job, %d watchers\n", total, watchers)
	fmt.Printf("persisted without watchers: %.0f events/s (%v)\n", float64(total)/alone.Seconds(), alone.Round(time.Millisecond))
	fmt.Printf("persisted with %d watchers:  %.0f events/s (%v)\n", watchers, float64(total)/withWatchers.Seconds(), withWatchers.Round(time.Millisecond))
	fmt.Printf("delivered to each watcher:  %.0f events/s (slowest watcher done after %v)\n", float64(total)/slowest.Seconds(), slowest.Round(time.Millisecond))
	fmt.Printf("jobs_persist_events_per_sec %.0f (goal >= 20000)\n", float64(total)/withWatchers.Seconds())
	fmt.Printf("jobs_watcher_slowdown %.2f\n", withWatchers.Seconds()/alone.Seconds())
	return nil
}
