package gateway

import (
	"sync"

	"github.com/croupier/croupier/api/netsvr"
)

// maxCmdWorkers caps RegisterReq.processCmdGoroutineNum.
const maxCmdWorkers = 64

// oneWay are the business commands without an answer: with
// processCmdGoroutineNum > 1 they run on the business's worker pool.
var oneWay = map[netsvr.Cmd]bool{
	netsvr.Cmd_ConnInfoUpdate: true, netsvr.Cmd_ConnInfoDelete: true,
	netsvr.Cmd_Multicast: true, netsvr.Cmd_SingleCast: true, netsvr.Cmd_SingleCastBulk: true,
	netsvr.Cmd_TopicSubscribe: true, netsvr.Cmd_TopicUnsubscribe: true, netsvr.Cmd_TopicDelete: true,
	netsvr.Cmd_TopicPublishBulk: true, netsvr.Cmd_ForceOffline: true, netsvr.Cmd_ForceOfflineGuest: true,
}

// cmdPool runs one business's one-way commands on up to n goroutines when
// it registered with processCmdGoroutineNum n > 1, as netsvr does. The
// ordering rules:
//   - one-way commands may run concurrently and finish in any order;
//   - a command with an answer (and Register, Unregister, Broadcast and
//     TopicPublish) waits until every earlier one-way command has finished
//     and then runs on the reader, so answers stay in request order (the
//     protocol has no correlation id) and reflect every earlier command.
//
// The queue holds at most n commands; beyond that the reader waits, which
// stops it reading the business's socket (back-pressure, no unbounded
// queue). The business's reader goroutine owns the pool: it closes it
// before it exits, and close waits for the workers.
type cmdPool struct {
	jobs     chan func()
	inflight sync.WaitGroup
	workers  sync.WaitGroup
}

func newCmdPool(n int) *cmdPool {
	n = min(n, maxCmdWorkers)
	p := &cmdPool{jobs: make(chan func(), n)}
	p.workers.Add(n)
	for range n {
		go func() {
			defer p.workers.Done()
			for f := range p.jobs {
				f()
				p.inflight.Done()
			}
		}()
	}
	return p
}

// run queues f, waiting while the queue is full.
func (p *cmdPool) run(f func()) {
	p.inflight.Add(1)
	p.jobs <- f
}

// wait returns when every queued command has finished.
func (p *cmdPool) wait() { p.inflight.Wait() }

// close finishes the queued commands and stops the workers.
func (p *cmdPool) close() {
	close(p.jobs)
	p.workers.Wait()
}
