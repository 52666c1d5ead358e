package revocation

import (
	"context"
	"time"
)

// FollowEvery is Follow reloading every d instead of Refresh.
func (r *List) FollowEvery(ctx context.Context, d time.Duration, reloaded ...func()) (stop func(), err error) {
	return r.follow(ctx, d, reloaded)
}
