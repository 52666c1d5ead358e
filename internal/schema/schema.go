package schema

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/types/known/structpb"
)

// baseURL names the document being compiled. Relative references resolve
// against it and are then refused by denyLoader; error messages replace it
// with "schema" so callers see a location such as "schema#/properties/x".
const baseURL = "mem:///schema.json"

// Schema is a compiled JSON Schema. It is immutable and safe for concurrent
// use. The zero value and a nil *Schema accept every instance.
type Schema struct {
	compiled *jsonschema.Schema
}

// Compile compiles s. A nil or empty struct yields a schema that accepts
// anything, matching a descriptor without params_schema. The error names
// the failing location inside the schema and says why.
func Compile(s *structpb.Struct) (*Schema, error) {
	raw, err := canonicalJSON(s)
	if err != nil {
		return nil, err
	}
	return compileJSON(raw)
}

// canonicalJSON encodes s deterministically (encoding/json sorts map keys),
// so equal schemas give equal bytes and can share a cache entry. nil means
// "no schema".
func canonicalJSON(s *structpb.Struct) ([]byte, error) {
	if len(s.GetFields()) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(s.AsMap())
	if err != nil {
		// Only reachable with NaN/Inf numbers, which JSON cannot carry.
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	return raw, nil
}

func compileJSON(raw []byte) (*Schema, error) {
	if raw == nil {
		return &Schema{}, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(denyLoader{})
	if err := c.AddResource(baseURL, doc); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	compiled, err := c.Compile(baseURL)
	if err != nil {
		return nil, describeCompileError(err, doc)
	}
	return &Schema{compiled: compiled}, nil
}

// AcceptsAll reports whether the schema places no constraint at all
// (nil or empty source), letting callers skip validation work.
func (s *Schema) AcceptsAll() bool { return s == nil || s.compiled == nil }

// Validate checks v, a JSON-decoded value (map[string]any, []any, string,
// float64, bool, nil — what structpb.Struct.AsMap produces; json.Number and
// Go integers are accepted too). It returns nil when v is valid.
//
// The result is a concrete pointer: compare it with nil before storing it
// in an error variable, or a nil *ValidationError becomes a non-nil error.
func (s *Schema) Validate(v any) *ValidationError {
	if s.AcceptsAll() {
		return nil
	}
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	return fromLibraryError(err)
}

// ValidateStruct validates a protobuf payload; a nil struct is validated as
// the empty object, which is what an omitted payload means on the wire.
func (s *Schema) ValidateStruct(p *structpb.Struct) *ValidationError {
	if s.AcceptsAll() {
		return nil
	}
	return s.Validate(p.AsMap())
}
