package schema_test

import (
	"errors"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestValidatedMemoisesByContent(t *testing.T) {
	t.Parallel()
	v := schema.NewValidated(2)
	good := func() *croupierv1.FunctionDescriptor {
		s, _ := structpb.NewStruct(map[string]any{"type": "object"})
		return &croupierv1.FunctionDescriptor{Id: "a.b", ParamsSchema: s}
	}
	bad := func() *croupierv1.FunctionDescriptor {
		s, _ := structpb.NewStruct(map[string]any{"type": 7})
		return &croupierv1.FunctionDescriptor{Id: "a.b", ParamsSchema: s}
	}
	for range 3 { // equal content, different messages: one entry each
		if err := v.Validate(good()); err != nil {
			t.Fatalf("good descriptor: %v", err)
		}
		var de *schema.DescriptorError
		if err := v.Validate(bad()); !errors.As(err, &de) || de.Field != "params_schema" {
			t.Fatalf("bad descriptor: %v, want a params_schema DescriptorError", err)
		}
	}
	if v.Len() != 2 {
		t.Fatalf("Len = %d, want 2", v.Len())
	}
	if err := v.Validate(&croupierv1.FunctionDescriptor{Id: "c.d"}); err != nil || v.Len() != 1 {
		t.Fatalf("third descriptor at capacity 2: err %v, Len %d; want a fresh memo of 1", err, v.Len())
	}
}
