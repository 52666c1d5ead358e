// Package storeerr maps the errors of services over the store to API
// statuses (internal/apierr). It is apart from apierr so that what imports
// the catalog — the SDK among others — does not link the store and its
// database drivers.
package storeerr

import (
	"context"
	"errors"
	"log/slog"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ToStatus maps what a service's collaborators return: nil and statuses
// pass through; the call's own end, or a context error, becomes CANCELED
// or TIMEOUT; store.ErrInvalidArgument INVALID_ARGUMENT with the store's
// message (it names the value refused and carries no SQL);
// store.ErrUnavailable UNAVAILABLE; anything else is INTERNAL, its details
// logged under an error id (apierr.Internal).
func ToStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return apierr.FromContext(ctx.Err())
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return apierr.FromContext(err)
	case errors.Is(err, store.ErrInvalidArgument):
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, store.Message(err))
	case errors.Is(err, store.ErrUnavailable):
		return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the database is unavailable; retry shortly")
	}
	return apierr.Internal(log, err)
}
