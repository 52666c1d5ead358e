package fleet

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/fleet/filter"
	"github.com/croupier/croupier/internal/store"
)

// Stable error codes of the fleet plane (ErrorInfo.code): names for
// entries of the one catalog in internal/apierr.
const (
	CodeInvalidArgument      = apierr.CodeInvalidArgument
	CodeUnknownScope         = apierr.CodeUnknownScope
	CodeFleetNotFound        = apierr.CodeFleetNotFound
	CodeFleetExists          = apierr.CodeFleetExists
	CodeFleetInUse           = apierr.CodeFleetInUse
	CodeFleetChanged         = apierr.CodeFleetChanged
	CodeSessionNotFound      = apierr.CodeSessionNotFound
	CodeSessionExists        = apierr.CodeSessionExists
	CodeSessionState         = apierr.CodeSessionState
	CodeSessionFull          = apierr.CodeSessionFull
	CodeCreationDenied       = apierr.CodeCreationDenied
	CodePlayerNotFound       = apierr.CodePlayerNotFound
	CodePlayerState          = apierr.CodePlayerState
	CodePlayerSeated         = apierr.CodePlayerSeated
	CodePlacementNotFound    = apierr.CodePlacementNotFound
	CodePlacementQueueFull   = apierr.CodePlacementQueueFull
	CodePlacementExists      = apierr.CodePlacementExists
	CodeNoCapacity           = apierr.CodeNoCapacity
	CodeProcessNotFound      = apierr.CodeProcessNotFound
	CodeNotOwner             = apierr.CodeNotOwner
	CodeInvalidFilter        = apierr.CodeInvalidFilter
	CodeAgentUnavailable     = apierr.CodeAgentUnavailable
	CodeLaunchPathNotAllowed = apierr.CodeLaunchPathNotAllowed
	CodeInternal             = apierr.CodeInternal
)

// Error is a fleet failure with the gRPC code and stable code the edge
// reports. Details are key/value pairs for ErrorInfo.details.
type Error struct {
	GRPC    codes.Code
	Code    string
	Msg     string
	Details map[string]string
	cause   error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.cause }

func newErr(c codes.Code, code, format string, args ...any) *Error {
	return &Error{GRPC: c, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func invalidArg(format string, args ...any) *Error {
	return newErr(codes.InvalidArgument, CodeInvalidArgument, format, args...)
}

// filterError turns a filter or sort SyntaxError into INVALID_ARGUMENT with
// the offset and token, keeping the message with its caret line.
func filterError(field string, err error) error {
	var se *filter.SyntaxError
	if !errors.As(err, &se) {
		return invalidArg("%s: %v", field, err)
	}
	e := newErr(codes.InvalidArgument, CodeInvalidFilter, "%s: %s", field, se.Error())
	e.Details = map[string]string{"field": field, "offset": strconv.Itoa(se.Pos), "token": se.Token}
	e.cause = err
	return e
}

// storeErr maps a store error about `what` (e.g. "game server session x")
// to a fleet error; notFoundCode is the code for ErrNotFound. Unclassified
// errors are returned unchanged for the edge to log as internal.
func storeErr(err error, notFoundCode string) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	var refused *store.JoinRefusedError
	if errors.As(err, &refused) {
		e := &Error{GRPC: codes.FailedPrecondition, cause: err, Details: map[string]string{
			"game_server_session_id": refused.SessionID, "status": refused.Status,
			"players": strconv.Itoa(refused.Players), "max_players": strconv.Itoa(refused.MaxPlayers),
		}}
		switch refused.Reason {
		case store.JoinFull:
			e.Code = CodeSessionFull
			e.Msg = fmt.Sprintf("game server session %s is full: %d of %d player slots are taken and %d were requested",
				refused.SessionID, refused.Players, refused.MaxPlayers, refused.Requested)
		case store.JoinDenied:
			e.Code = CodeCreationDenied
			e.Msg = fmt.Sprintf("game server session %s does not accept new players (player session creation policy DENY_ALL)", refused.SessionID)
		default:
			e.Code = CodeSessionState
			e.Msg = fmt.Sprintf("game server session %s is %s; players can join ACTIVE sessions only", refused.SessionID, refused.Status)
		}
		return e
	}
	msg := store.Message(err)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{GRPC: codes.NotFound, Code: notFoundCode, Msg: msg + " does not exist", cause: err}
	case errors.Is(err, store.ErrNotOwner):
		return &Error{GRPC: codes.PermissionDenied, Code: CodeNotOwner, Msg: msg, cause: err}
	case errors.Is(err, store.ErrNoCapacity):
		return &Error{GRPC: codes.ResourceExhausted, Code: CodeNoCapacity, Msg: msg + "; start a placement to wait for capacity", cause: err}
	case errors.Is(err, store.ErrInvalidArgument):
		return &Error{GRPC: codes.InvalidArgument, Code: CodeInvalidArgument, Msg: msg, cause: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{GRPC: codes.FailedPrecondition, Code: CodeSessionState, Msg: msg, cause: err}
	case errors.Is(err, store.ErrUnavailable):
		return &Error{GRPC: codes.Unavailable, Code: apierr.CodeUnavailable, Msg: "the database is unavailable; retry later", cause: err}
	}
	return err
}
