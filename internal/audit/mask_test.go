package audit_test

import (
	"encoding/json"
	"testing"

	"github.com/croupier/croupier/internal/audit"
)

func TestMask(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		payload  string
		pointers []string
		want     string
	}{
		{"no pointers keeps bytes", `{"b":1, "a":2}`, nil, `{"b":1, "a":2}`},
		{"top-level field", `{"player":"p1","reason":"cheat"}`, []string{"/reason"}, `{"player":"p1","reason":"***"}`},
		{"nested", `{"card":{"number":"4111","exp":"12/30"}}`, []string{"/card/number"}, `{"card":{"exp":"12/30","number":"***"}}`},
		{"whole object", `{"card":{"number":"4111"},"x":1}`, []string{"/card"}, `{"card":"***","x":1}`},
		{"array index", `{"keys":["a","b","c"]}`, []string{"/keys/1"}, `{"keys":["a","***","c"]}`},
		{"array out of range ignored", `{"keys":["a"]}`, []string{"/keys/5", "/keys/-1", "/keys/01"}, `{"keys":["a"]}`},
		{"missing ignored", `{"a":1}`, []string{"/b", "/a/b"}, `{"a":1}`},
		{"escaped tokens", `{"a/b":1,"m~n":2,"c":3}`, []string{"/a~1b", "/m~0n"}, `{"a/b":"***","c":3,"m~n":"***"}`},
		{"wildcard members", `{"players":[{"id":1,"token":"x"},{"id":2,"token":"y"}]}`, []string{"/players/*/token"},
			`{"players":[{"id":1,"token":"***"},{"id":2,"token":"***"}]}`},
		{"numbers kept exactly", `{"big":12345678901234567890,"f":1.50,"s":"x"}`, []string{"/s"}, `{"big":12345678901234567890,"f":1.50,"s":"***"}`},
		{"empty pointer masks all", `{"a":1}`, []string{""}, `"***"`},
		{"malformed pointer masks all", `{"a":1}`, []string{"a"}, `"***"`},
		{"bad escape masks all", `{"a":1}`, []string{"/a~2"}, `"***"`},
		{"invalid JSON masked", `{"a":`, []string{"/a"}, `"***"`},
		{"trailing data masked", `{"a":1}{"b":2}`, []string{"/a"}, `"***"`},
		{"scalar document", `"secret"`, []string{"/x"}, `"secret"`},
	}
	for _, tc := range cases {
		got := string(audit.Mask([]byte(tc.payload), tc.pointers))
		if got != tc.want {
			t.Errorf("%s: Mask(%s, %q) = %s, want %s", tc.name, tc.payload, tc.pointers, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s: result is not JSON: %s", tc.name, got)
		}
	}
}

func FuzzMask(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"d"}]}}`), "/a/b/2/c")
	f.Add([]byte(`[]`), "/*")
	f.Add([]byte(`{"~":1}`), "/~0")
	f.Fuzz(func(t *testing.T, payload []byte, pointer string) {
		out := audit.Mask(payload, []string{pointer})
		if !json.Valid(out) {
			t.Fatalf("Mask(%q, %q) = %q: not JSON", payload, pointer, out)
		}
	})
}
