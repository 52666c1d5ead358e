package schema_test

import (
	"fmt"

	"github.com/croupier/croupier/internal/schema"
	"google.golang.org/protobuf/types/known/structpb"
)

func Example() {
	params, _ := structpb.NewStruct(map[string]any{
		"type": "object",
		"properties": map[string]any{
			"count": map[string]any{"type": "integer"},
		},
	})
	cache := schema.NewCache(0)
	sch, err := cache.Get(params)
	if err != nil {
		fmt.Println(err)
		return
	}
	payload, _ := structpb.NewStruct(map[string]any{"count": "x"})
	if verr := sch.ValidateStruct(payload); verr != nil {
		fmt.Println(verr.Pointer)
		fmt.Println(verr)
	}
	// Output:
	// /count
	// invalid at "/count": got string, want integer
}
