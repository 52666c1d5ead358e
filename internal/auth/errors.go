package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Stable ErrorInfo codes of this package (docs/access.md lists them).
const (
	// CodeUnauthenticated: no credential at all.
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodeInvalidCredentials: wrong username or password.
	CodeInvalidCredentials = "INVALID_CREDENTIALS"
	// CodeTokenInvalid: a token that does not parse, verify or exist.
	CodeTokenInvalid = "TOKEN_INVALID"
	// CodeTokenExpired: a token past its expiry.
	CodeTokenExpired = "TOKEN_EXPIRED"
	// CodeTokenRevoked: a token of a revoked login session.
	CodeTokenRevoked = "TOKEN_REVOKED"
	// CodeUserDisabled: the user is disabled.
	CodeUserDisabled = "USER_DISABLED"
	CodeUserNotFound = "USER_NOT_FOUND"
	CodeUserExists   = "USER_EXISTS"
	CodeRoleNotFound = "ROLE_NOT_FOUND"
	CodeRoleExists   = "ROLE_EXISTS"
	// CodeRoleInUse: a custom role that is still granted cannot be deleted.
	CodeRoleInUse = "ROLE_IN_USE"
	// CodeRoleBuiltin: built-in roles cannot be created or deleted.
	CodeRoleBuiltin = "ROLE_BUILTIN"
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
		msg := strings.TrimSuffix(strings.TrimPrefix(err.Error(), "store: "), ": "+store.ErrInvalidArgument.Error())
		return invalidArg(msg)
	case errors.Is(err, store.ErrUnavailable):
		return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the database is unavailable; retry shortly")
	}
	return apierr.Internal(log, err)
}
