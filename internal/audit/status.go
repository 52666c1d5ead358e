package audit

import (
	"context"
	"errors"
	"log/slog"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps a service error for the API: statuses pass through, store
// conditions become their codes, anything else is INTERNAL with the details
// logged under an id.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		if ctx.Err() != nil {
			return apierr.FromContext(ctx.Err())
		}
		return apierr.FromContext(err)
	case errors.Is(err, store.ErrInvalidArgument):
		// The store's message names the value it refused and carries no SQL.
		msg := store.Message(err)
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, msg)
	case errors.Is(err, store.ErrUnavailable):
		return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the database is unavailable; retry shortly")
	}
	return apierr.Internal(log, err)
}
