package schema_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzCompileValidate feeds arbitrary schemas and payloads through Compile
// and Validate: neither may panic, and a failure must carry a pointer that
// is a valid JSON pointer. Run with -fuzzminimizetime=2s: the default
// minimisation of long inputs stalls the fuzzer for a minute at a time.
func FuzzCompileValidate(f *testing.F) {
	f.Add(`{"type":"object","properties":{"a":{"type":"integer"}}}`, `{"a":"x"}`)
	f.Add(`{"$ref":"#/$defs/x","$defs":{"x":{"items":{"$ref":"#"}}}}`, `[[[1]]]`)
	f.Add(`{"anyOf":[{"required":["x"]},{"not":{}}]}`, `{}`)
	f.Add(`{"$ref":"http://127.0.0.1:1/x"}`, `1`)
	f.Add(`{"patternProperties":{"^a":{"const":1}}}`, `{"ab":2}`)
	f.Fuzz(func(t *testing.T, schemaJSON, payloadJSON string) {
		// Watchdog: a schema that takes seconds to compile or apply is a
		// denial of service on the control plane; fail with the input.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				panic(fmt.Sprintf("slow input: schema %q payload %q", schemaJSON, payloadJSON))
			}
		}()
		var m map[string]any
		if json.Unmarshal([]byte(schemaJSON), &m) != nil {
			return
		}
		s, err := structpb.NewStruct(m)
		if err != nil {
			return
		}
		sch, err := schema.Compile(s)
		if err != nil {
			return
		}
		var v any
		if json.Unmarshal([]byte(payloadJSON), &v) != nil {
			return
		}
		pv, err := structpb.NewValue(v)
		if err != nil {
			return
		}
		if verr := sch.Validate(pv.AsInterface()); verr != nil && verr.Pointer != "" {
			if perr := schema.ValidatePointer(verr.Pointer); perr != nil {
				t.Fatalf("failure pointer %q is not a JSON pointer: %v", verr.Pointer, perr)
			}
		}
	})
}
