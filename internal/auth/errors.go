package auth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Stable ErrorInfo codes of this package: names for entries of the one
// catalog in internal/apierr (docs/api.md lists them).
const (
	CodeUnauthenticated    = apierr.CodeUnauthenticated
	CodeInvalidCredentials = apierr.CodeInvalidCredentials
	CodeTokenInvalid       = apierr.CodeTokenInvalid
	CodeTokenExpired       = apierr.CodeTokenExpired
	CodeTokenRevoked       = apierr.CodeTokenRevoked
	CodeUserDisabled       = apierr.CodeUserDisabled
	CodeUserNotFound       = apierr.CodeUserNotFound
	CodeUserExists         = apierr.CodeUserExists
	CodeRoleNotFound       = apierr.CodeRoleNotFound
	CodeRoleExists         = apierr.CodeRoleExists
	CodeRoleInUse          = apierr.CodeRoleInUse
	CodeRoleBuiltin        = apierr.CodeRoleBuiltin
)

func unauthenticated(code, msg string) error {
	return apierr.New(codes.Unauthenticated, code, msg)
}

func invalidArg(msg string) error {
	return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, msg)
}

// toStatus maps a service error for the API: statuses pass through, store
// conditions become their codes, anything else is INTERNAL with the details
// logged under an id.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return apierr.FromContext(ctx.Err())
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return apierr.FromContext(err)
	case errors.Is(err, store.ErrInvalidArgument):
		msg := store.Message(err)
		return invalidArg(msg)
	case errors.Is(err, store.ErrUnavailable):
		return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the database is unavailable; retry shortly")
	}
	return apierr.Internal(log, err)
}
