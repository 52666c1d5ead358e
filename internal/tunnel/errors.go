package tunnel

import (
	"context"
	"errors"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ctxError turns a finished context into the status a caller expects:
// DEADLINE_EXCEEDED or CANCELED.
func ctxError(ctx context.Context) error {
	return status.FromContextError(ctx.Err()).Err()
}

// handlerStatus maps a handler's error to the status sent to the caller:
// gRPC status errors (also wrapped ones) keep their code and message, context
// errors become DEADLINE_EXCEEDED / CANCELED, anything else is UNKNOWN with
// the error's message.
func handlerStatus(err error) *spb.Status {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.OK {
			// A status error that claims OK is a handler bug; never let
			// it read as success on the other side.
			return status.New(codes.Unknown, "handler returned an error with status OK").Proto()
		}
		return st.Proto()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Proto()
	}
	return status.New(codes.Unknown, err.Error()).Proto()
}

// asStatus returns err as a status error, wrapping plain errors with code.
func asStatus(err error, code codes.Code) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(code, err.Error())
}

// notSentError marks the error of a call that never left this process (the
// client is not connected, the call could not be queued, or the deadline
// came first): the client cannot have run it. It keeps err's status.
type notSentError struct{ err error }

func (e notSentError) Error() string              { return e.err.Error() }
func (e notSentError) Unwrap() error              { return e.err }
func (e notSentError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// NotSent is true: callers that deduplicate requests may let a retry run.
func (e notSentError) NotSent() bool { return true }

func notSent(err error) error { return notSentError{err} }
