// Package audit keeps the tamper-evident record of what operators did:
// every invoke, job start and cancel, approval decision, login, and user or
// role change is appended to a hash-chained log (see Hash and Verify), with
// the payload's sensitive fields masked (see Mask). docs/access.md describes
// the chain and how to verify it.
package audit

import (
	"context"
	"errors"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Actions recorded by the platform. Callers may record others; an action is
// a short dotted name.
const (
	ActionInvoke          = "invoke"
	ActionJobStart        = "job.start"
	ActionJobCancel       = "job.cancel"
	ActionApprovalRequest = "approval.request"
	ActionApprovalApprove = "approval.approve"
	ActionApprovalReject  = "approval.reject"
	ActionApprovalExpire  = "approval.expire"
	ActionApprovalExecute = "approval.execute"
	ActionLogin           = "login"
	ActionLogout          = "logout"
	ActionTokenReuse      = "token.reuse"
	ActionUserCreate      = "user.create"
	ActionUserPassword    = "user.passwd"
	ActionUserDisable     = "user.disable"
	ActionUserEnable      = "user.enable"
	ActionRoleCreate      = "role.create"
	ActionRoleDelete      = "role.delete"
	ActionRoleGrant       = "role.grant"
	ActionRoleRevoke      = "role.revoke"
)

// Entry is one thing to record.
type Entry struct {
	// Time of the action; zero means now.
	Time time.Time
	// Actor is who did it: principal.Principal.String(), e.g. "operator:bob".
	Actor  string
	Action string
	// Game, Env and Function scope the action; empty for global ones (login,
	// user and role changes).
	Game, Env, Function string
	// Payload is the request: JSON bytes (json.RawMessage or []byte), a
	// proto.Message (encoded with protojson), or any value json.Marshal
	// accepts; nil records {}.
	Payload any
	// SensitiveFields are JSON pointers (the descriptor's
	// auth.sensitive_fields) whose values are replaced by "***".
	SensitiveFields []string
	// Err is the outcome; the row records its gRPC code name (OK if nil).
	Err error
	// Duration of the action.
	Duration  time.Duration
	RequestID string
}

// Recorder records entries; *Log implements it. Services take a Recorder so
// tests can substitute one and a nil Recorder can mean "not recorded".
type Recorder interface {
	Record(ctx context.Context, e Entry) error
}

// codeNames are the canonical gRPC code names (as in the gRPC spec and
// google.rpc.Code), which codes.Code.String() does not produce.
var codeNames = [...]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
	codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
	codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
	codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
}

// ResultOf names the gRPC code of err: "OK" for nil, context errors as
// CANCELLED / DEADLINE_EXCEEDED, non-status errors and UNKNOWN as
// INTERNAL, which is how the edge answers them (a bug), so that a row
// written by a service and one written by the edge name a failure alike.
func ResultOf(err error) string {
	var c codes.Code
	switch {
	case err == nil:
		c = codes.OK
	case errors.Is(err, context.Canceled):
		c = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		c = codes.DeadlineExceeded
	default:
		if c = status.Code(err); c == codes.Unknown {
			c = codes.Internal
		}
	}
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return c.String()
}

// NewRefusalLimiter bounds the rows of refused requests from callers who
// need no privilege to try (players, RTMP publishers), who could otherwise
// fill the trail: 5 rows per second, bursts of 50, per limiter (one per
// process). Refusals beyond it are still logged by their service.
func NewRefusalLimiter() *rate.Limiter { return rate.NewLimiter(5, 50) }
