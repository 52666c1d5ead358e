package schema_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestCompileEmptyAcceptsAnything(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]*structpb.Struct{
		"nil":   nil,
		"empty": {},
	} {
		sch, err := schema.Compile(s)
		if err != nil {
			t.Fatalf("%s: Compile: %v", name, err)
		}
		if !sch.AcceptsAll() {
			t.Errorf("%s: AcceptsAll = false", name)
		}
		for _, v := range []any{nil, "x", 1.0, map[string]any{"a": []any{1.0}}} {
			if verr := sch.Validate(v); verr != nil {
				t.Errorf("%s: Validate(%v) = %v, want nil", name, v, verr)
			}
		}
	}
	var nilSchema *schema.Schema
	if verr := nilSchema.Validate("x"); verr != nil {
		t.Errorf("nil *Schema rejected a value: %v", verr)
	}
}

func TestCompileErrorsNameLocationAndReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, schema, pointer, reason string
	}{
		{"unknown type", `{"type":"strin"}`, "/type", "value must be one of"},
		{"nested bad type", `{"properties":{"a":{"type":5}}}`, "/properties/a/type", "must be one of"},
		{"negative minLength", `{"properties":{"a":{"minLength":-1}}}`, "/properties/a/minLength", "minimum"},
		{"bad regex", `{"properties":{"a":{"pattern":"(("}}}`, "/properties/a/pattern", "regex"},
		{"remote ref", `{"$ref":"https://example.com/x.json"}`, "/$ref", "remote references are not allowed"},
		{"relative ref", `{"properties":{"a":{"$ref":"other.json#/foo"}}}`, "/properties/a/$ref", `cannot resolve "other.json#/foo"`},
		{"file ref", `{"properties":{"a":{"$ref":"file:///etc/passwd"}}}`, "/properties/a/$ref", "remote references are not allowed"},
		{"absolute path ref", `{"items":{"$ref":"/etc/passwd"}}`, "/items/$ref", "remote references are not allowed"},
		{"missing $defs", `{"properties":{"a":{"$ref":"#/$defs/missing"}}}`, "/properties/a/$ref", `"#/$defs/missing" does not exist`},
		{"missing anchor", `{"properties":{"a":{"$ref":"#nowhere"}}}`, "/properties/a/$ref", `anchor "#nowhere" does not exist`},
		{"remote metaschema", `{"$schema":"https://evil.example/meta"}`, "/$schema", "remote references are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := schema.Compile(mustStruct(t, tt.schema))
			var ce *schema.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%s) = %v (%T), want *CompileError", tt.schema, err, err)
			}
			if ce.Pointer != tt.pointer {
				t.Errorf("Pointer = %q, want %q (err: %v)", ce.Pointer, tt.pointer, err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", ce.Reason, tt.reason)
			}
			if strings.Contains(err.Error(), "mem://") {
				t.Errorf("error leaks the internal base URL: %v", err)
			}
		})
	}
}

func TestCompileAcceptsInDocumentReferencesAndOtherDrafts(t *testing.T) {
	t.Parallel()
	for _, js := range []string{
		`{"$defs":{"i":{"type":"integer"}},"properties":{"a":{"$ref":"#/$defs/i"}}}`,
		`{"$id":"https://game.example/s.json","$defs":{"i":{"type":"integer"}},"properties":{"a":{"$ref":"#/$defs/i"}}}`,
		`{"$defs":{"i":{"$anchor":"int","type":"integer"}},"properties":{"a":{"$ref":"#int"}}}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"i":{"type":"integer"}},"properties":{"a":{"$ref":"#/definitions/i"}}}`,
		`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`,
	} {
		sch, err := schema.Compile(mustStruct(t, js))
		if err != nil {
			t.Errorf("Compile(%s): %v", js, err)
			continue
		}
		if verr := sch.Validate(decode(t, `{"a":"x"}`)); verr == nil && strings.Contains(js, `"a"`) {
			t.Errorf("Compile(%s) accepted {\"a\":\"x\"}; the in-document $ref was not applied", js)
		}
	}
}

// TestCompileNeverFetches proves the deny-all loader: a reference to a live
// local HTTP server and to a readable file both fail without being read.
func TestCompileNeverFetches(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"type":"integer"}`)
	}))
	t.Cleanup(srv.Close)

	file := filepath.Join(t.TempDir(), "int.json")
	if err := os.WriteFile(file, []byte(`{"type":"integer"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, ref := range []string{srv.URL + "/int.json", "file://" + file, file} {
		_, err := schema.Compile(mustStruct(t, fmt.Sprintf(`{"properties":{"a":{"$ref":%q}}}`, ref)))
		if err == nil || !strings.Contains(err.Error(), "remote references are not allowed") {
			t.Errorf("$ref %q: err = %v, want remote references refused", ref, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("HTTP server was fetched %d times, want 0", n)
	}
}

func TestValidatePicksMostSpecificLocation(t *testing.T) {
	t.Parallel()
	sch, err := schema.Compile(mustStruct(t, `{
		"type": "object",
		"required": ["name"],
		"additionalProperties": false,
		"properties": {
			"name":  {"type": "string", "minLength": 2},
			"count": {"type": "integer", "minimum": 1},
			"tags":  {"type": "array", "items": {"type": "string", "format": "email"}},
			"a/b~c": {"type": "boolean"},
			"pick":  {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "integer"}}}]},
			"deep":  {"type": "object", "properties": {"inner": {"type": "object", "properties": {"leaf": {"enum": ["a", "b"]}}}}}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		payload, pointer, message string
	}{
		{`{"name":"ok"}`, "", ""},
		{`{"name":"ok","count":3,"tags":["a@b.example"],"pick":"s","deep":{"inner":{"leaf":"a"}}}`, "", ""},
		{`{"name":"ok","count":"x"}`, "/count", "want integer"},
		{`{"count":"x"}`, "/count", "want integer"}, // deeper than the missing "name" at the root
		{`{"name":"ok","count":1.5}`, "/count", "want integer"},
		{`{"name":"ok","count":0}`, "/count", "minimum"},
		{`{}`, "", "missing property 'name'"},
		{`{"name":"ok","zz":1}`, "", "additional properties 'zz'"},
		{`{"name":"ok","tags":["a@b.example","nope"]}`, "/tags/1", "email"},
		{`{"name":"ok","a/b~c":"yes"}`, "/a~1b~0c", "want boolean"},
		{`{"name":"ok","pick":{"x":"s"}}`, "/pick/x", "want integer"},
		{`{"name":"ok","deep":{"inner":{"leaf":"z"}}}`, "/deep/inner/leaf", "must be one of"},
		{`"not an object"`, "", "want object"},
	}
	for _, tt := range tests {
		verr := sch.Validate(decode(t, tt.payload))
		if tt.message == "" {
			if verr != nil {
				t.Errorf("%s: unexpected error %v", tt.payload, verr)
			}
			continue
		}
		if verr == nil {
			t.Errorf("%s: valid, want failure at %q", tt.payload, tt.pointer)
			continue
		}
		if verr.Pointer != tt.pointer || !strings.Contains(verr.Message, tt.message) {
			t.Errorf("%s: got (%q, %q), want (%q, ~%q)", tt.payload, verr.Pointer, verr.Message, tt.pointer, tt.message)
		}
		if len(verr.Causes) == 0 || verr.Causes[0] != (schema.Cause{Pointer: verr.Pointer, Message: verr.Message}) {
			t.Errorf("%s: Causes[0] = %v, want the headline failure", tt.payload, verr.Causes)
		}
	}
}

func TestValidateListsEveryFailureDeterministically(t *testing.T) {
	t.Parallel()
	sch, err := schema.Compile(mustStruct(t, `{"properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}},"required":["d"]}`))
	if err != nil {
		t.Fatal(err)
	}
	payload := decode(t, `{"a":"x","b":"x","c":"x"}`)
	want := []string{"/a", "/b", "/c", ""}
	// Properties are validated in map order; the report must not depend on it.
	for range 50 {
		verr := sch.Validate(payload)
		if verr == nil {
			t.Fatal("payload accepted")
		}
		var got []string
		for _, c := range verr.Causes {
			got = append(got, c.Pointer)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cause pointers = %q, want %q", got, want)
		}
		if !strings.Contains(verr.Error(), `"/a"`) || !strings.Contains(verr.Error(), "and 3 more") {
			t.Fatalf("Error() = %q", verr.Error())
		}
	}
}

func TestValidateCapsCauses(t *testing.T) {
	t.Parallel()
	sch, err := schema.Compile(mustStruct(t, `{"type":"array","items":{"type":"string"}}`))
	if err != nil {
		t.Fatal(err)
	}
	items := make([]any, 100)
	for i := range items {
		items[i] = float64(i)
	}
	verr := sch.Validate(items)
	if verr == nil {
		t.Fatal("array of numbers accepted")
	}
	if len(verr.Causes) != 16 || !verr.Truncated {
		t.Errorf("len(Causes) = %d, Truncated = %v; want 16, true", len(verr.Causes), verr.Truncated)
	}
	if !strings.HasSuffix(verr.Error(), "(and 15+ more)") {
		t.Errorf("Error() = %q, want a truncation hint", verr.Error())
	}
}

func TestValidateStruct(t *testing.T) {
	t.Parallel()
	sch, err := schema.Compile(mustStruct(t, `{"type":"object","required":["id"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if verr := sch.ValidateStruct(nil); verr == nil || !strings.Contains(verr.Message, "'id'") {
		t.Errorf("ValidateStruct(nil) = %v, want missing 'id' (nil payload is the empty object)", verr)
	}
	if verr := sch.ValidateStruct(mustStruct(t, `{"id":7}`)); verr != nil {
		t.Errorf("ValidateStruct({id:7}) = %v", verr)
	}
}
