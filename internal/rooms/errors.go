package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits on what callers send, checked before any work is done.
const (
	maxNameRunes     = 64
	maxRoomPassword  = 128
	maxEmailLen      = 254
	maxURLLen        = 2048
	maxTitleRunes    = 256
	maxChatBytes     = 2000
	maxDanmakuBytes  = 200
	maxSearchRunes   = 64
	maxPageSize      = 100
	defaultPageSize  = 20
	maxPlaylist      = 500
	chatKeep         = 500
	maxPosition      = 1e7 // seconds, about 115 days
	minRate, maxRate = 0.25, 4.0
	maxMessageID     = 64
	maxColorLen      = 32
	maxPageToken     = 256
)

func invalid(format string, args ...any) error {
	return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func tooLong(field string, limit int, unit string) error {
	return apierr.New(codes.InvalidArgument, apierr.CodeFieldLimit, fmt.Sprintf("%s is too long: at most %d %s", field, limit, unit))
}

func denied(format string, args ...any) error {
	return apierr.New(codes.PermissionDenied, apierr.CodePermissionDenied, fmt.Sprintf(format, args...))
}

func missing(p clientv1.Permission, roomID string) error {
	return apierr.New(codes.PermissionDenied, apierr.CodePermissionDenied,
		fmt.Sprintf("missing permission %s in room %s; ask the room's creator or an admin", permName(p), roomID),
		"permission", permName(p))
}

func roomNotFound(id string) error {
	return apierr.New(codes.NotFound, apierr.CodeRoomNotFound, "room "+id+" does not exist")
}

func unauthenticated(code, msg string) error { return apierr.New(codes.Unauthenticated, code, msg) }

// checkName validates a room or guest name: 1–64 characters, no control
// characters, surrounding space trimmed.
func checkName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalid("%s is required", field)
	case !utf8.ValidString(s):
		return "", invalid("%s is not valid UTF-8", field)
	case utf8.RuneCountInString(s) > maxNameRunes:
		return "", tooLong(field, maxNameRunes, "characters")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "", invalid("%s contains control characters", field)
	}
	return s, nil
}

// checkText validates chat and danmaku content.
func checkText(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", invalid("%s is empty", field)
	case len(s) > limit:
		return "", tooLong(field, limit, "bytes")
	case !utf8.ValidString(s):
		return "", invalid("%s is not valid UTF-8", field)
	}
	return s, nil
}

func checkRoomID(id string) error {
	if id == "" {
		return invalid("room_id is required")
	}
	if !validID(id) {
		return invalid("room_id %q is malformed: ids are 12 characters of A-Z a-z 0-9 _ -", truncate(id, 32))
	}
	return nil
}

func checkUserID(field, id string) error {
	if id == "" {
		return invalid("%s is required", field)
	}
	if !validID(id) {
		return invalid("%s %q is malformed: ids are 12 characters of A-Z a-z 0-9 _ -", field, truncate(id, 32))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// versionMismatch is the refusal of a playback change based on an old
// state.
func versionMismatch(roomID string, got, current int64) error {
	return apierr.New(codes.Aborted, apierr.CodePlaybackVersion,
		fmt.Sprintf("room %s playback is at version %d, not %d: another member changed it first; apply the current state and retry", roomID, current, got),
		"version", strconv.FormatInt(current, 10))
}

// errorMessage turns an error into the stream's ErrorMessage.
func errorMessage(err error, ref string) *clientv1.ServerMessage {
	code, msg := apierr.CodeInternal, "internal error"
	if info := apierr.Info(err); info != nil {
		code, msg = info.GetCode(), info.GetMessage()
	} else if st, ok := status.FromError(err); ok {
		code, msg = apierr.CodeOf(st.Code()), st.Message()
	}
	return &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Error{Error: &clientv1.ErrorMessage{
		Code: code, Message: msg, RefMessageId: ref}}}
}

// toStatus is storeerr.ToStatus, except for the store's refusal of an
// argument: the service builds the ids and values it stores, so that is
// a bug here, INTERNAL and logged, not the player's INVALID_ARGUMENT.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if errors.Is(err, store.ErrInvalidArgument) {
		return apierr.Internal(log, err)
	}
	return storeerr.ToStatus(ctx, log, err)
}
