package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/protobuf/types/known/structpb"
)

// nested returns a payload whose objects (or arrays) nest depth levels.
func nested(depth int, arrays bool) *structpb.Struct {
	v := structpb.NewStringValue("leaf")
	for range depth - 1 {
		if arrays {
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{v}})
		} else {
			v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": v}})
		}
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{"top": v}}
}

func TestCheckDepth(t *testing.T) {
	t.Parallel()
	for _, arrays := range []bool{false, true} {
		if err := schema.CheckDepth(nested(schema.MaxDepth, arrays), schema.MaxDepth); err != nil {
			t.Fatalf("arrays=%v: depth %d refused: %v", arrays, schema.MaxDepth, err)
		}
		for _, d := range []int{schema.MaxDepth + 1, 5000} {
			err := schema.CheckDepth(nested(d, arrays), schema.MaxDepth)
			var de *schema.DepthError
			if !errors.As(err, &de) {
				t.Fatalf("arrays=%v depth %d: %v, want a DepthError", arrays, d, err)
			}
			if !strings.HasPrefix(de.Pointer, "/top/") || len(de.Pointer) > 100 {
				t.Fatalf("pointer %q", de.Pointer)
			}
		}
	}
	if err := schema.CheckDepth(nil, schema.MaxDepth); err != nil {
		t.Fatalf("nil payload: %v", err)
	}
}
