package schema

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// MaxDepth is how deeply a payload may nest objects and arrays: the
// payload object itself is level 1. Real parameters stay far below it;
// deeper documents only cost stack and time in every hop (the validator,
// the audit log, the tunnel, the SDK's decoder).
const MaxDepth = 64

// DepthError says where a payload nests deeper than the limit.
type DepthError struct {
	// Pointer is the JSON pointer of the first value past the limit,
	// shortened to a readable prefix.
	Pointer string
	Max     int
}

func (e *DepthError) Error() string {
	return fmt.Sprintf("payload nests deeper than %d levels of objects and arrays (at %s)", e.Max, e.Pointer)
}

// maxPointerBytes bounds the pointer quoted in a DepthError.
const maxPointerBytes = 96

// CheckDepth returns a *DepthError when p nests objects and arrays more
// than max levels deep. It never descends past max, so its own recursion
// is bounded whatever the payload.
func CheckDepth(p *structpb.Struct, max int) error {
	var path []string
	if !structWithin(p, 1, max, &path) {
		ptr := "/" + strings.Join(path, "/")
		if len(ptr) > maxPointerBytes {
			ptr = ptr[:maxPointerBytes] + "…"
		}
		return &DepthError{Pointer: ptr, Max: max}
	}
	return nil
}

func structWithin(s *structpb.Struct, depth, max int, path *[]string) bool {
	if depth > max {
		return false
	}
	for k, v := range s.GetFields() {
		*path = append(*path, escapeToken(k))
		if !valueWithin(v, depth, max, path) {
			return false
		}
		*path = (*path)[:len(*path)-1]
	}
	return true
}

func valueWithin(v *structpb.Value, depth, max int, path *[]string) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structWithin(k.StructValue, depth+1, max, path)
	case *structpb.Value_ListValue:
		if depth+1 > max {
			return false
		}
		for i, e := range k.ListValue.GetValues() {
			*path = append(*path, fmt.Sprint(i))
			if !valueWithin(e, depth+1, max, path) {
				return false
			}
			*path = (*path)[:len(*path)-1]
		}
	}
	return true
}

// escapeToken escapes a key as an RFC 6901 pointer token, cut to keep
// messages short.
func escapeToken(k string) string {
	if len(k) > 32 {
		k = k[:32] + "…"
	}
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
