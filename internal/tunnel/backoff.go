package tunnel

import (
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing reconnect delays with jitter, so a
// fleet of agents that lost the server together does not reconnect in step.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func newBackoff(minDelay, maxDelay time.Duration) *backoff {
	return &backoff{min: minDelay, max: maxDelay}
}

// next returns a delay in [d/2, d], where d doubles from min up to max.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }
