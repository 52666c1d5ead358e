package schema

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// maxCauses bounds how many failures a ValidationError carries, so a huge
// invalid payload cannot produce a huge error response.
const maxCauses = 16

// ValidationError says why an instance does not satisfy a schema.
type ValidationError struct {
	// Pointer is the JSON pointer (RFC 6901) of the most specific failing
	// instance location: the deepest one, "" for the root. For a missing
	// required property it is the object that lacks it; Message names it.
	Pointer string
	// Message describes the failure at Pointer, e.g. "got string, want integer".
	Message string
	// Causes lists every distinct failure, most specific first, capped at
	// maxCauses. Causes[0] is always {Pointer, Message}.
	Causes []Cause
	// Truncated reports that more failures existed than Causes holds.
	Truncated bool
}

// Cause is one failing instance location.
type Cause struct {
	Pointer string
	Message string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Pointer == "" {
		b.WriteString("invalid at document root: ")
	} else {
		fmt.Fprintf(&b, "invalid at %q: ", e.Pointer)
	}
	b.WriteString(e.Message)
	if extra := len(e.Causes) - 1; extra > 0 || e.Truncated {
		more := fmt.Sprint(extra)
		if e.Truncated {
			more += "+"
		}
		fmt.Fprintf(&b, " (and %s more)", more)
	}
	return b.String()
}

// fromLibraryError flattens the library's error tree into its leaves. The
// inner nodes (allOf, $ref, groups) only restate that a child failed; the
// leaves say what is actually wrong and where.
func fromLibraryError(err error) *ValidationError {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &ValidationError{Message: err.Error(), Causes: []Cause{{Message: err.Error()}}}
	}
	p := message.NewPrinter(language.English)
	type leaf struct {
		depth int
		Cause
	}
	var leaves []leaf
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, leaf{len(e.InstanceLocation), Cause{
				Pointer: pointerFromTokens(e.InstanceLocation),
				Message: e.ErrorKind.LocalizedString(p),
			}})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(verr)
	// The library visits object properties in map order; sorting makes the
	// reported pointer deterministic: deepest first, then lexical. Failures
	// at the same location keep the schema's order (for anyOf, the first
	// branch usually states the intent best).
	slices.SortStableFunc(leaves, func(a, b leaf) int {
		return cmp.Or(cmp.Compare(b.depth, a.depth), cmp.Compare(a.Pointer, b.Pointer))
	})
	leaves = dedupe(leaves, func(l leaf) Cause { return l.Cause })

	out := &ValidationError{}
	for i, l := range leaves {
		if i == maxCauses {
			out.Truncated = true
			break
		}
		out.Causes = append(out.Causes, l.Cause)
	}
	if len(out.Causes) == 0 { // defensive: a failure with no leaves
		out.Causes = []Cause{{Message: verr.ErrorKind.LocalizedString(p)}}
	}
	out.Pointer, out.Message = out.Causes[0].Pointer, out.Causes[0].Message
	return out
}

// pointerFromTokens encodes reference tokens as a JSON pointer (RFC 6901).
func pointerFromTokens(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// dedupe drops repeated keys, keeping the first occurrence and the order.
func dedupe[T any, K comparable](in []T, key func(T) K) []T {
	seen := make(map[K]struct{}, len(in))
	out := in[:0]
	for _, v := range in {
		k := key(v)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, v)
	}
	return out
}
