package auth

import (
	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
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
