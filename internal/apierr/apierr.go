// Package apierr is the catalog of Croupier's stable error codes and the one
// place where domain failures become gRPC statuses carrying an ErrorInfo
// detail. REST maps the same statuses to HTTP (see the seed's table), so the
// code, message and details reach every client unchanged.
package apierr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The catalog: every stable error code (ErrorInfo.code) of the API, in
// one place. Documented in docs/api.md; packages refer to these constants.
const (
	CodeInvalidArgument     = "INVALID_ARGUMENT"
	CodeInvalidPayload      = "INVALID_PAYLOAD"
	CodeInvalidDescriptor   = "INVALID_DESCRIPTOR"
	CodeUnknownScope        = "UNKNOWN_SCOPE"
	CodeFunctionNotFound    = "FUNCTION_NOT_FOUND"
	CodeFunctionDisabled    = "FUNCTION_DISABLED"
	CodeTargetNotFound      = "TARGET_NOT_FOUND"
	CodeNoInstance          = "NO_INSTANCE"
	CodeAgentNotFound       = "AGENT_NOT_FOUND"
	CodeAgentNotConnected   = "AGENT_NOT_CONNECTED"
	CodeScopeMismatch       = "SCOPE_MISMATCH"
	CodeIdempotencyConflict = "IDEMPOTENCY_KEY_REUSED"
	CodeIdempotencyPending  = "IDEMPOTENCY_KEY_IN_PROGRESS"
	CodeTimeout             = "TIMEOUT"
	CodeCanceled            = "CANCELED"
	CodeUnavailable         = "UNAVAILABLE"
	CodeJobNotFound         = "JOB_NOT_FOUND"
	CodeJobFinished         = "JOB_FINISHED"
	CodeInternal            = "INTERNAL"
	CodeUnimplemented       = "UNIMPLEMENTED"
	// CodeUnauthenticated: no (valid) credential at all.
	CodeUnauthenticated = "UNAUTHENTICATED"
	// CodePermissionDenied: the caller lacks a permission on a scope.
	CodePermissionDenied = "PERMISSION_DENIED"
	// CodeFieldLimit: an id, name, key or label over its length limit or
	// with characters it may not hold (docs/api.md, "Limits").
	CodeFieldLimit = "FIELD_LIMIT"
	// CodeMalformedRequest: a REST body that is not valid JSON for the
	// request message (syntax, unknown field, wrong type).
	CodeMalformedRequest = "MALFORMED_REQUEST"
	// CodeRequestTooLarge: a request body over max_request_bytes.
	CodeRequestTooLarge = "REQUEST_TOO_LARGE"
	// CodeRateLimited: a rate-limit refusal; details carry
	// "retry_after_ms", "limit" (user or function) and "key".
	CodeRateLimited = "RATE_LIMITED"
	// CodeCertificateRevoked: a client certificate on the revocation list.
	CodeCertificateRevoked = "CERTIFICATE_REVOKED"
	CodeFunctionServed     = "FUNCTION_SERVED"
	// CodeEventGap: an agent's job events skip a sequence number; details
	// carry "expected_seq", where it must re-send from.
	CodeEventGap = "EVENT_GAP"
	// The canonical names of the gRPC codes that an error raised below the
	// services (a transport, a tunnel, the gateway) carries as its
	// ErrorInfo code (CodeOf).
	CodeNotFound           = "NOT_FOUND"
	CodeAlreadyExists      = "ALREADY_EXISTS"
	CodeFailedPrecondition = "FAILED_PRECONDITION"
	CodeResourceExhausted  = "RESOURCE_EXHAUSTED"
	CodeAborted            = "ABORTED"
	CodeOutOfRange         = "OUT_OF_RANGE"
)

// Codes of a function call's outcome (InvokeFunctionResponse.error_code, a
// job's error code), not of an error status: the call reached the game
// server, or an approval, and this is how it ended.
const (
	// ResultApprovalRequired: the call waits for approval (approval_id).
	ResultApprovalRequired = "APPROVAL_REQUIRED"
	// ResultPartialFailure: a broadcast in which some instances failed.
	ResultPartialFailure = "PARTIAL_FAILURE"
	// ResultFunctionError: the handler failed without a code of its own
	// (the SDK's default).
	ResultFunctionError = "FUNCTION_ERROR"
)

// Sign-in, users and roles (internal/auth).
const (
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

// Approvals (internal/approval).
const (
	CodeApprovalNotFound      = "APPROVAL_NOT_FOUND"
	CodeSelfApproval          = "SELF_APPROVAL"
	CodeApprovalNotPending    = "APPROVAL_NOT_PENDING"
	CodeApprovalExpired       = "APPROVAL_EXPIRED"
	CodeApprovalExecuteFailed = "APPROVAL_EXECUTE_FAILED"
)

// The fleet plane (internal/fleet).
const (
	CodeFleetNotFound      = "FLEET_NOT_FOUND"
	CodeFleetExists        = "FLEET_ALREADY_EXISTS"
	CodeFleetInUse         = "FLEET_IN_USE"
	CodeFleetChanged       = "FLEET_VERSION_MISMATCH"
	CodeSessionNotFound    = "GAME_SERVER_SESSION_NOT_FOUND"
	CodeSessionExists      = "GAME_SERVER_SESSION_ALREADY_EXISTS"
	CodeSessionState       = "GAME_SERVER_SESSION_INVALID_STATUS"
	CodeSessionFull        = "GAME_SERVER_SESSION_FULL"
	CodeCreationDenied     = "PLAYER_SESSION_CREATION_DENIED"
	CodePlayerNotFound     = "PLAYER_SESSION_NOT_FOUND"
	CodePlayerState        = "PLAYER_SESSION_INVALID_STATUS"
	CodePlayerSeated       = "PLAYER_ALREADY_JOINED"
	CodePlacementNotFound  = "PLACEMENT_NOT_FOUND"
	CodePlacementQueueFull = "PLACEMENT_QUEUE_FULL"
	CodePlacementExists    = "PLACEMENT_ALREADY_EXISTS"
	CodeNoCapacity         = "FLEET_CAPACITY_EXCEEDED"
	CodeProcessNotFound    = "PROCESS_NOT_FOUND"
	CodeNotOwner           = "NOT_OWNER"
	CodeInvalidFilter      = "INVALID_FILTER_EXPRESSION"
	CodeAgentUnavailable   = "AGENT_UNAVAILABLE"
	// CodeLaunchPathNotAllowed: a fleet's launch path lies outside the
	// build directories of an agent that would host it.
	CodeLaunchPathNotAllowed = "LAUNCH_PATH_NOT_ALLOWED"
)

// Rooms (internal/rooms, docs/rooms.md). The MessageStream's ErrorMessage
// carries these codes too.
const (
	CodeRoomNotFound   = "ROOM_NOT_FOUND"
	CodeMovieNotFound  = "MOVIE_NOT_FOUND"
	CodeMemberNotFound = "MEMBER_NOT_FOUND"
	// CodeNotMember: the caller is not an active member of the room.
	CodeNotMember = "NOT_A_MEMBER"
	// CodeRoomPassword: a wrong or missing room password.
	CodeRoomPassword = "ROOM_PASSWORD_INVALID"
	// CodeMemberBanned: the user is banned from the room.
	CodeMemberBanned = "MEMBER_BANNED"
	// CodeMemberPending: the join waits in the room's approval queue.
	CodeMemberPending = "MEMBER_PENDING"
	// CodeMemberStatus: the member is not in the status the call acts on
	// (approving one who is not pending, unbanning one who is not banned,
	// setting the permissions of one who is not active); FAILED_PRECONDITION.
	CodeMemberStatus = "MEMBER_INVALID_STATUS"
	// CodeCreatorCannotLeave: a room's creator cannot leave it (they
	// delete it instead); FAILED_PRECONDITION.
	CodeCreatorCannotLeave = "CREATOR_CANNOT_LEAVE"
	// CodeGuestsNotAllowed: the room does not allow guests, or a guest
	// token is used outside its room.
	CodeGuestsNotAllowed = "GUESTS_NOT_ALLOWED"
	// CodePlaybackVersion: a playback change based on an old
	// RoomState.version; details carry "version" (the current one).
	CodePlaybackVersion = "PLAYBACK_VERSION_MISMATCH"
	CodePlaylistFull    = "PLAYLIST_FULL"
	// CodeNoCurrentMovie: playback needs a current movie first.
	CodeNoCurrentMovie = "NO_CURRENT_MOVIE"
	// CodeStreamReplaced: the same user opened another stream in the room.
	CodeStreamReplaced = "STREAM_REPLACED"
	// CodeRoomDeleted: the room was deleted.
	CodeRoomDeleted = "ROOM_DELETED"
	// CodeSlowConsumer: a stream that did not read its messages in time.
	CodeSlowConsumer = "SLOW_CONSUMER"
	// CodeStreamKeyNotFound: the room has no live stream key of that name.
	CodeStreamKeyNotFound = "STREAM_KEY_NOT_FOUND"
	// CodeStreamKeyExists: the stream already has a key (rotate it instead).
	CodeStreamKeyExists = "STREAM_KEY_EXISTS"
)

// New returns a status error with an ErrorInfo detail. details are key/value
// pairs (k1, v1, k2, v2, ...).
func New(c codes.Code, code, msg string, details ...string) error {
	info := &croupierv1.ErrorInfo{Code: code, Message: msg}
	if len(details) > 0 {
		info.Details = make(map[string]string, len(details)/2)
		for i := 0; i+1 < len(details); i += 2 {
			info.Details[details[i]] = details[i+1]
		}
	}
	st, err := status.New(c, msg).WithDetails(info)
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// Newf is New with a formatted message and no details.
func Newf(c codes.Code, code, format string, args ...any) error {
	return New(c, code, fmt.Sprintf(format, args...))
}

// Info extracts the ErrorInfo of a status error, if any.
func Info(err error) *croupierv1.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*croupierv1.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// FromContext turns a context error into the matching status; other errors
// pass through.
func FromContext(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return New(codes.DeadlineExceeded, CodeTimeout, "the call did not finish before its deadline")
	case errors.Is(err, context.Canceled):
		return New(codes.Canceled, CodeCanceled, "the call was cancelled by the caller")
	}
	return err
}

// Internal logs err under a fresh id and returns an INTERNAL status naming
// only that id, so internal details never leak to clients.
func Internal(log *slog.Logger, err error) error {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	log.Error("internal error", "error_id", id, "err", err)
	return New(codes.Internal, CodeInternal, "internal error; quote id "+id+" to an administrator", "error_id", id)
}

// CodeOf is the catalog code for a bare gRPC code, for errors raised
// outside the domain (transport, gateway): the canonical code name.
func CodeOf(c codes.Code) string {
	switch c {
	case codes.Canceled:
		return CodeCanceled
	case codes.DeadlineExceeded:
		return CodeTimeout
	case codes.Unauthenticated:
		return CodeUnauthenticated
	case codes.PermissionDenied:
		return CodePermissionDenied
	case codes.Unimplemented:
		return CodeUnimplemented
	case codes.Unavailable:
		return CodeUnavailable
	case codes.InvalidArgument:
		return CodeInvalidArgument
	case codes.NotFound:
		return CodeNotFound
	case codes.ResourceExhausted:
		return CodeResourceExhausted
	case codes.FailedPrecondition:
		return CodeFailedPrecondition
	case codes.AlreadyExists:
		return CodeAlreadyExists
	case codes.Aborted:
		return CodeAborted
	case codes.OutOfRange:
		return CodeOutOfRange
	}
	return CodeInternal
}
