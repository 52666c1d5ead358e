package tunnel

import "sync"

// eventOrder runs callbacks one at a time in ticket order. Tickets are taken
// while the state they describe changes (under Server.mu); the callbacks run
// after that lock is released, so they may call back into the Server without
// deadlocking, and still never observe "disconnected" after a later
// "connected" for the same name.
type eventOrder struct {
	issued uint64 // guarded by Server.mu

	mu     sync.Mutex
	cond   *sync.Cond
	served uint64
}

func (e *eventOrder) init() { e.cond = sync.NewCond(&e.mu) }

// take issues the next ticket; the caller must hold Server.mu and must pass
// the ticket to run.
func (e *eventOrder) take() uint64 {
	e.issued++
	return e.issued
}

// run waits for the tickets before this one to finish, then runs fn.
func (e *eventOrder) run(ticket uint64, fn func()) {
	e.mu.Lock()
	for e.served+1 != ticket {
		e.cond.Wait()
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.served = ticket
		e.cond.Broadcast()
		e.mu.Unlock()
	}()
	fn()
}
