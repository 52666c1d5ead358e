package tunnel

import (
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	contentTypeProto = "application/x-protobuf"
	// statusHeader marks an error response as the tunnel server's own (as
	// opposed to a proxy's), carrying the gRPC code. The client retries
	// proxy errors but not the server's verdicts.
	statusHeader = "X-Tunnel-Status"
)

// httpStatusFromCode follows the gRPC-to-HTTP mapping of google.rpc.Code.
func httpStatusFromCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // client closed request
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// codeFromHTTPStatus guesses a code for an error response without a status
// body (typically from a proxy).
func codeFromHTTPStatus(s int) codes.Code {
	switch s {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	default:
		return codes.Unknown
	}
}

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		writeError(w, status.Errorf(codes.Internal, "encoding response: %v", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentTypeProto)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // the client notices a short body and retries
}

// writeError sends err as an HTTP status with a google.rpc.Status body.
func writeError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	b, _ := proto.Marshal(st.Proto()) // a Status always marshals
	h := w.Header()
	h.Set("Content-Type", contentTypeProto)
	h.Set("Cache-Control", "no-store")
	h.Set(statusHeader, strconv.Itoa(int(st.Code())))
	w.WriteHeader(httpStatusFromCode(st.Code()))
	_, _ = w.Write(b)
}
