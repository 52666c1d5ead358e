package gateway

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// BenchmarkHub measures the hub's operations from many goroutines (as nbio
// pollers and business readers call them) while another goroutine takes
// broadcast snapshots of 10,000 connections back to back, as a business
// broadcasting under load does.
func BenchmarkHub(b *testing.B) {
	const online, topics = 10000, 100
	setup := func() (*hub, []*client, func()) {
		h := newHub()
		cs := make([]*client, online)
		for i := range cs {
			cs[i] = &client{uniqID: fmt.Sprintf("%018X", i)}
			h.add(cs[i])
			h.subscribe(cs[i].uniqID, []string{fmt.Sprintf("t%d", i%topics)})
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the broadcasting business
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = h.all()
			}
		}()
		return h, cs, func() { close(stop); wg.Wait() }
	}
	b.Run("identity", func(b *testing.B) { // every client message
		h, cs, stop := setup()
		defer stop()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 1))
			for pb.Next() {
				_, _ = h.identity(cs[r.IntN(online)])
			}
		})
	})
	b.Run("connect", func(b *testing.B) { // connection churn
		h, _, stop := setup()
		defer stop()
		var n sync.Mutex
		seq := 0
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Lock()
				seq++
				id := fmt.Sprintf("C%017X", seq)
				n.Unlock()
				c := &client{uniqID: id}
				h.add(c)
				h.remove(c)
			}
		})
	})
	b.Run("subscribe", func(b *testing.B) { // TopicSubscribe / TopicUnsubscribe
		h, cs, stop := setup()
		defer stop()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 2))
			for pb.Next() {
				id, t := cs[r.IntN(online)].uniqID, []string{fmt.Sprintf("x%d", r.IntN(topics))}
				h.subscribe(id, t)
				h.unsubscribe(id, t)
			}
		})
	})
	b.Run("publish", func(b *testing.B) { // TopicPublish snapshots of 100 members
		h, _, stop := setup()
		defer stop()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 3))
			for pb.Next() {
				_ = h.members([]string{fmt.Sprintf("t%d", r.IntN(topics))})
			}
		})
	})
}
