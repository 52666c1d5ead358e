package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"unicode/utf8"
)

// shrinkLevel is one pass of Truncate: how much of each string, array and
// object it keeps, and how deep.
type shrinkLevel struct{ str, items, keys, depth int }

// shrinkLevels go from gentle to harsh; Truncate stops at the first that
// fits.
var shrinkLevels = []shrinkLevel{
	{str: 1024, items: 64, keys: 256, depth: 16},
	{str: 256, items: 16, keys: 64, depth: 8},
	{str: 64, items: 4, keys: 32, depth: 4},
	{str: 16, items: 1, keys: 16, depth: 2},
}

// Truncate returns the JSON document raw shrunk to at most max bytes while
// keeping what identifies the call: the top-level field names (the
// function's named parameters) and the start of every value. Long strings
// are cut and end with "…(+N bytes)", long arrays keep their first elements
// and a "…(+N more)" element, large objects their first keys (sorted) and a
// "…" key, deep values become "…". The result is an object marked
// "_truncated": true with the original size in "_bytes" (a top-level value
// that is not an object goes under "value"). raw must be valid JSON; it is
// returned as is when it fits.
func Truncate(raw []byte, max int) []byte {
	if len(raw) <= max {
		return raw
	}
	summary := fmt.Appendf(nil, `{"_truncated":true,"_bytes":%d}`, len(raw))
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return summary
	}
	for _, lv := range shrinkLevels {
		var out map[string]any
		if obj, ok := doc.(map[string]any); ok {
			out = make(map[string]any, len(obj)+2)
			// Every top-level name is kept at the gentler levels; values
			// are shrunk one level down.
			keys := sortedKeys(obj)
			if len(keys) > lv.keys*4 {
				out["…"] = fmt.Sprintf("(+%d more fields)", len(keys)-lv.keys*4)
				keys = keys[:lv.keys*4]
			}
			for _, k := range keys {
				out[cutString(k, lv.str)] = shrink(obj[k], lv, 1)
			}
		} else {
			out = map[string]any{"value": shrink(doc, lv, 1)}
		}
		out["_truncated"], out["_bytes"] = true, len(raw)
		b, err := json.Marshal(out)
		if err == nil && len(b) <= max {
			return b
		}
	}
	return summary
}

func shrink(v any, lv shrinkLevel, depth int) any {
	switch n := v.(type) {
	case string:
		return cutString(n, lv.str)
	case []any:
		if depth >= lv.depth {
			return fmt.Sprintf("…(array of %d)", len(n))
		}
		out := make([]any, 0, min(len(n), lv.items)+1)
		for i, e := range n {
			if i == lv.items {
				out = append(out, fmt.Sprintf("…(+%d more)", len(n)-lv.items))
				break
			}
			out = append(out, shrink(e, lv, depth+1))
		}
		return out
	case map[string]any:
		if depth >= lv.depth {
			return fmt.Sprintf("…(object of %d fields)", len(n))
		}
		keys := sortedKeys(n)
		out := make(map[string]any, min(len(keys), lv.keys)+1)
		if len(keys) > lv.keys {
			out["…"] = fmt.Sprintf("(+%d more fields)", len(keys)-lv.keys)
			keys = keys[:lv.keys]
		}
		for _, k := range keys {
			out[cutString(k, lv.str)] = shrink(n[k], lv, depth+1)
		}
		return out
	}
	return v // numbers, booleans, null
}

// cutString keeps the first max bytes of s (on a rune boundary) and says
// how much was cut.
func cutString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(+%d bytes)", len(s)-cut)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
