// Package fieldlimit bounds the identifiers, names and labels of a request
// by their field names, wherever they sit in it: the edge checks every
// request with it before authorisation and before anything is stored, and
// the agent checks what game servers register with it, so that nothing it
// forwards is refused upstream.
package fieldlimit

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Limits on the identifiers of every request, checked at the edge before
// authorisation and before anything is stored (docs/api.md, "Limits"). A
// field is an identifier by its name, wherever it sits in the request:
//
//   - ids and keys — "id", "*_id", "*_ids", "*_key", "*_token" except the
//     credentials (access_token, refresh_token), env, scope, role, username,
//     serial, target_agent, instance, permissions, allowed_roles: at most
//     MaxIDBytes bytes of UTF-8 without spaces, control or invisible
//     formatting characters (Unicode Cf: zero-width, bidirectional overrides),
//     which would let an id look like another in a list or an audit row;
//   - names — "name", "*_name": at most MaxIDBytes, no control or
//     bidirectional-text control characters;
//   - labels — map fields "labels" and "agent_selector": keys as ids, values at most
//     maxLabelValueBytes without control characters.
//
// A rule of the method table may override the byte limit of a field by name.
// Payloads (google.protobuf.Struct) and free text are bounded only by the
// request size (max_request_bytes).
const (
	MaxIDBytes         = 128
	maxLabelValueBytes = 256
	// QuoteMax bounds how much of a refused value an error message or a log
	// line quotes.
	QuoteMax = 32
	// maxNesting bounds how deep the check follows nested messages.
	maxNesting = 16
)

var idNames = map[string]bool{
	"id": true, "env": true, "scope": true, "role": true, "username": true, "serial": true,
	"target_agent": true, "instance": true, "permissions": true, "allowed_roles": true,
}

var notIDs = map[string]bool{"access_token": true, "refresh_token": true, "next_token": true, "page_token": true, "next_page_token": true}

type fieldKind int

const (
	fieldOther fieldKind = iota
	fieldID
	fieldName
	fieldLabels
)

func kindOf(name string) fieldKind {
	switch {
	case notIDs[name]:
		return fieldOther
	case idNames[name], strings.HasSuffix(name, "_id"), strings.HasSuffix(name, "_ids"),
		strings.HasSuffix(name, "_key"), strings.HasSuffix(name, "_token"):
		return fieldID
	case name == "name", strings.HasSuffix(name, "_name"):
		return fieldName
	case name == "labels", name == "agent_selector":
		return fieldLabels
	}
	return fieldOther
}

// Check checks every identifier in m; overrides maps a field name to
// its own byte limit.
func Check(m proto.Message, overrides map[string]int) error {
	return checkMessage(m.ProtoReflect(), "", overrides, 0)
}

func checkMessage(m protoreflect.Message, prefix string, overrides map[string]int, depth int) error {
	if depth > maxNesting {
		return apierr.New(codes.InvalidArgument, apierr.CodeFieldLimit,
			fmt.Sprintf("request nests messages deeper than %d levels", maxNesting), "field", prefix)
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		path := prefix + name
		limit := MaxIDBytes
		if n, ok := overrides[name]; ok {
			limit = n
		}
		switch {
		case fd.IsMap():
			if kindOf(name) != fieldLabels || fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
				if fd.MapValue().Kind() == protoreflect.MessageKind && !wellKnown(fd.MapValue().Message()) {
					v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
						err = checkMessage(mv.Message(), path+"["+Truncate(k.String(), QuoteMax)+"].", overrides, depth+1)
						return err == nil
					})
				}
				return err == nil
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if err = checkString(path+" key", k.String(), fieldID, limit); err == nil {
					err = checkString(path+"["+Truncate(k.String(), QuoteMax)+"]", mv.String(), fieldName, maxLabelValueBytes)
				}
				return err == nil
			})
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if wellKnown(fd.Message()) {
				return true
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len() && err == nil; i++ {
					err = checkMessage(l.Get(i).Message(), path+"["+strconv.Itoa(i)+"].", overrides, depth+1)
				}
			} else {
				err = checkMessage(v.Message(), path+".", overrides, depth+1)
			}
		case fd.Kind() == protoreflect.StringKind:
			k := kindOf(name)
			if k != fieldID && k != fieldName {
				if _, ok := overrides[name]; !ok {
					return true
				}
				k = fieldName
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len() && err == nil; i++ {
					err = checkString(path+"["+strconv.Itoa(i)+"]", l.Get(i).String(), k, limit)
				}
			} else {
				err = checkString(path, v.String(), k, limit)
			}
		}
		return err == nil
	})
	return err
}

// wellKnown reports google.protobuf types (Struct payloads, timestamps):
// they hold data, not identifiers.
func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile() != nil && md.ParentFile().Package() == "google.protobuf"
}

func checkString(field, s string, k fieldKind, limit int) error {
	if len(s) > limit {
		return apierr.New(codes.InvalidArgument, apierr.CodeFieldLimit,
			fmt.Sprintf("%s is %d bytes; the limit is %d (value starts %q)", field, len(s), limit, Truncate(s, QuoteMax)),
			"field", field, "limit", strconv.Itoa(limit))
	}
	if !utf8.ValidString(s) {
		return apierr.New(codes.InvalidArgument, apierr.CodeFieldLimit, field+" is not valid UTF-8", "field", field)
	}
	for _, r := range s {
		if r < utf8.RuneSelf && r > ' ' && r != 0x7f {
			continue // printable ASCII: no control, space, Cf or bidi control
		}
		if unicode.IsControl(r) || k == fieldID && (unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)) || unicode.Is(unicode.Bidi_Control, r) {
			what := "control or bidirectional-text characters"
			if k == fieldID {
				what = "spaces, control or invisible formatting characters"
			}
			return apierr.New(codes.InvalidArgument, apierr.CodeFieldLimit,
				fmt.Sprintf("%s may not contain %s (U+%04X; value starts %+q)", field, what, r, Truncate(s, QuoteMax)), "field", field)
		}
	}
	return nil
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// IDFields collects the identifiers of a request (truncated to MaxIDBytes)
// for its audit row: what the call was about, never its secrets or
// payload.
func IDFields(m proto.Message) map[string]any {
	out := map[string]any{}
	collectIDs(m.ProtoReflect(), "", out, 0)
	return out
}

func collectIDs(m protoreflect.Message, prefix string, out map[string]any, depth int) {
	if depth > maxNesting || len(out) >= 32 {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case fd.IsMap():
		case fd.Kind() == protoreflect.MessageKind:
			if !fd.IsList() && !wellKnown(fd.Message()) {
				collectIDs(v.Message(), prefix+name+".", out, depth+1)
			}
		case fd.Kind() == protoreflect.StringKind && (kindOf(name) == fieldID || kindOf(name) == fieldName || name == "reason"):
			if fd.IsList() {
				l := v.List()
				vals := make([]string, 0, min(l.Len(), 16))
				for i := 0; i < l.Len() && i < 16; i++ {
					vals = append(vals, Truncate(l.Get(i).String(), MaxIDBytes))
				}
				out[prefix+name] = vals
			} else {
				out[prefix+name] = Truncate(v.String(), MaxIDBytes)
			}
		}
		return len(out) < 32
	})
}
