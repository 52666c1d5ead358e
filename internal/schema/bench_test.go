package schema_test

import (
	"testing"

	"github.com/croupier/croupier/internal/schema"
)

func BenchmarkCachedValidate(b *testing.B) {
	params := mustStruct(b, `{"type":"object","required":["player_id","reason"],"properties":{
		"player_id":{"type":"string","minLength":1},"reason":{"type":"string","maxLength":200},
		"days":{"type":"integer","minimum":1,"maximum":365}}}`)
	payload := mustStruct(b, `{"player_id":"p-123","reason":"cheating","days":7}`)
	c := schema.NewCache(0)
	b.ReportAllocs()
	for b.Loop() {
		sch, err := c.Get(params)
		if err != nil {
			b.Fatal(err)
		}
		if verr := sch.ValidateStruct(payload); verr != nil {
			b.Fatal(verr)
		}
	}
}
