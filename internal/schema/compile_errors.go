package schema

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// CompileError says why a schema does not compile and where.
type CompileError struct {
	// Pointer is the JSON pointer of the offending location inside the
	// schema document ("" for the root).
	Pointer string
	// Reason is a human-readable explanation.
	Reason string
}

func (e *CompileError) Error() string {
	if e.Pointer == "" {
		return "invalid schema: " + e.Reason
	}
	return fmt.Sprintf("invalid schema at %q: %s", e.Pointer, e.Reason)
}

// describeCompileError turns the library's compile errors, which name
// locations by internal URL, into a CompileError with a schema pointer.
func describeCompileError(err error, doc any) error {
	var metaErr *jsonschema.SchemaValidationError
	if errors.As(err, &metaErr) {
		verr := fromLibraryError(metaErr.Err)
		return &CompileError{
			Pointer: fragmentOf(metaErr.URL) + verr.Pointer,
			Reason:  verr.Message,
		}
	}
	var loadErr *jsonschema.LoadURLError
	if errors.As(err, &loadErr) {
		ptr, written := findReference(doc, loadErr.URL, false)
		return &CompileError{
			Pointer: ptr,
			Reason:  fmt.Sprintf("cannot resolve %q: %v", orURL(written, loadErr.URL), errRemoteRef),
		}
	}
	var regexErr *jsonschema.InvalidRegexError
	if errors.As(err, &regexErr) {
		return &CompileError{
			Pointer: fragmentOf(regexErr.URL),
			Reason:  fmt.Sprintf("invalid regular expression %q: %v", regexErr.Regex, regexErr.Err),
		}
	}
	var ptrErr *jsonschema.JSONPointerNotFoundError
	if errors.As(err, &ptrErr) {
		ptr, written := findReference(doc, ptrErr.URL, true)
		return &CompileError{
			Pointer: ptr,
			Reason:  fmt.Sprintf("reference target %q does not exist in the schema", orURL(written, ptrErr.URL)),
		}
	}
	var anchorErr *jsonschema.AnchorNotFoundError
	if errors.As(err, &anchorErr) {
		ptr, written := findReference(doc, anchorErr.Reference, true)
		return &CompileError{
			Pointer: ptr,
			Reason:  fmt.Sprintf("anchor %q does not exist in the schema", orURL(written, anchorErr.Reference)),
		}
	}
	return &CompileError{Reason: strings.ReplaceAll(err.Error(), baseURL, "schema")}
}

// fragmentOf returns the decoded fragment of u ("" when absent), which the
// library uses for JSON pointers into the schema.
func fragmentOf(u string) string {
	_, frag, ok := strings.Cut(u, "#")
	if !ok {
		return ""
	}
	if dec, err := url.PathUnescape(frag); err == nil {
		return dec
	}
	return frag
}

// orURL prefers the reference as the schema author wrote it; failing that,
// the resolved URL without the internal base.
func orURL(written, resolved string) string {
	if written != "" {
		return written
	}
	return strings.ReplaceAll(resolved, baseURL, "")
}

// findReference locates the "$ref"/"$dynamicRef"/"$schema" keyword whose
// value resolves to target, so an unresolvable reference is reported where
// it is written. It returns the keyword's pointer and value, or "" when
// none matches. Fragments are compared only when withFragment is set (a
// failed load names the document, not the fragment). Objects are walked in
// sorted key order to keep the answer deterministic.
func findReference(doc any, target string, withFragment bool) (pointer, written string) {
	targetDoc, targetFrag, _ := strings.Cut(target, "#")
	matches := func(ref string) bool {
		refDoc, refFrag, _ := strings.Cut(ref, "#")
		if withFragment && fragmentOf("#"+refFrag) != fragmentOf("#"+targetFrag) {
			return false
		}
		if refDoc == "" {
			// A fragment-only reference resolves against the enclosing
			// resource, whichever "$id" that has.
			return withFragment
		}
		// Relative references resolve against a base we do not track, so
		// match on the suffix of the resolved document URL.
		return strings.HasSuffix(targetDoc, strings.TrimPrefix(refDoc, "./"))
	}
	found := false
	var walk func(v any, ptr []string)
	walk = func(v any, ptr []string) {
		if found {
			return
		}
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				s, isStr := v[k].(string)
				if isStr && (k == "$ref" || k == "$dynamicRef" || k == "$schema") && matches(s) {
					pointer, written, found = pointerFromTokens(append(ptr, k)), s, true
					return
				}
			}
			for _, k := range keys {
				// Skip "const"/"enum"/"default"/"examples": data, not schema.
				if k == "const" || k == "enum" || k == "default" || k == "examples" {
					continue
				}
				walk(v[k], append(ptr[:len(ptr):len(ptr)], k))
			}
		case []any:
			for i, item := range v {
				walk(item, append(ptr[:len(ptr):len(ptr)], fmt.Sprint(i)))
			}
		}
	}
	walk(doc, nil)
	return pointer, written
}
