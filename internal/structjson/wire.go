package structjson

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// AppendWire appends the JSON of an encoded google.protobuf.Struct, the
// document AppendStructStrict writes for it once decoded, without building
// the Struct (a map of messages: decoding it costs more than writing the
// JSON). It handles what a protobuf encoder writes; ok is false for
// anything else — a map key twice, a Value with no kind or two, a number
// JSON cannot hold, invalid UTF-8, unknown fields, malformed bytes —,
// which the caller then decodes and writes the usual way, so that the
// answer (or the error) is always protojson's.
func AppendWire(b, raw []byte) (_ []byte, ok bool) {
	return appendWireStruct(b, raw, 0)
}

// maxWireDepth bounds the nesting AppendWire follows; deeper documents are
// left to the decoder and its own limit.
const maxWireDepth = 100

// The wire layout of google.protobuf.Struct and its parts.
const (
	wireStructFields protowire.Number = 1 // Struct.fields: map<string, Value>
	wireEntryKey     protowire.Number = 1
	wireEntryValue   protowire.Number = 2
	wireNull         protowire.Number = 1 // Value.null_value
	wireNumber       protowire.Number = 2 // Value.number_value
	wireString       protowire.Number = 3 // Value.string_value
	wireBool         protowire.Number = 4 // Value.bool_value
	wireStruct       protowire.Number = 5 // Value.struct_value
	wireList         protowire.Number = 6 // Value.list_value
	wireListValues   protowire.Number = 1 // ListValue.values
)

type wireEntry struct {
	key   string
	value []byte
}

func appendWireStruct(b, raw []byte, depth int) ([]byte, bool) {
	if depth > maxWireDepth {
		return b, false
	}
	var entries []wireEntry
	for len(raw) > 0 {
		v, rest, ok := consumeBytesField(raw, wireStructFields)
		if !ok {
			return b, false
		}
		raw = rest
		e, ok := wireMapEntry(v)
		if !ok {
			return b, false
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(x, y wireEntry) int { return strings.Compare(x.key, y.key) })
	b = append(b, '{')
	for i, e := range entries {
		if i > 0 {
			if e.key == entries[i-1].key {
				return b, false // the last would win: leave it to the decoder
			}
			b = append(b, ',')
		}
		b = append(appendJSONString(b, e.key), ':')
		var ok bool
		if b, ok = appendWireValue(b, e.value, depth+1); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// wireMapEntry reads a map entry holding exactly one key and one value.
func wireMapEntry(v []byte) (wireEntry, bool) {
	var (
		e                  wireEntry
		haveKey, haveValue bool
	)
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 || typ != protowire.BytesType {
			return e, false
		}
		x, m := protowire.ConsumeBytes(v[n:])
		if m < 0 {
			return e, false
		}
		v = v[n+m:]
		switch {
		case num == wireEntryKey && !haveKey:
			if !utf8.Valid(x) {
				return e, false
			}
			e.key, haveKey = string(x), true
		case num == wireEntryValue && !haveValue:
			e.value, haveValue = x, true
		default:
			return e, false
		}
	}
	return e, haveKey && haveValue
}

// appendWireValue writes a Value holding exactly one kind.
func appendWireValue(b, v []byte, depth int) ([]byte, bool) {
	num, typ, n := protowire.ConsumeTag(v)
	if n < 0 {
		return b, false
	}
	v = v[n:]
	var m int
	switch {
	case num == wireNull && typ == protowire.VarintType:
		_, m = protowire.ConsumeVarint(v)
		b = append(b, "null"...)
	case num == wireNumber && typ == protowire.Fixed64Type:
		var x uint64
		x, m = protowire.ConsumeFixed64(v)
		f := math.Float64frombits(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, false
		}
		b = appendFloat(b, f)
	case num == wireString && typ == protowire.BytesType:
		var s []byte
		s, m = protowire.ConsumeBytes(v)
		if m >= 0 && !utf8.Valid(s) {
			return b, false
		}
		b = appendJSONString(b, string(s))
	case num == wireBool && typ == protowire.VarintType:
		var x uint64
		x, m = protowire.ConsumeVarint(v)
		b = strconv.AppendBool(b, x != 0)
	case num == wireStruct && typ == protowire.BytesType:
		var s []byte
		if s, m = protowire.ConsumeBytes(v); m < 0 {
			return b, false
		}
		var ok bool
		if b, ok = appendWireStruct(b, s, depth); !ok {
			return b, false
		}
	case num == wireList && typ == protowire.BytesType:
		var l []byte
		if l, m = protowire.ConsumeBytes(v); m < 0 {
			return b, false
		}
		var ok bool
		if b, ok = appendWireList(b, l, depth); !ok {
			return b, false
		}
	default:
		return b, false
	}
	// Exactly one field: a second would replace or merge into the first.
	return b, m >= 0 && len(v) == m
}

func appendWireList(b, l []byte, depth int) ([]byte, bool) {
	if depth > maxWireDepth {
		return b, false
	}
	b = append(b, '[')
	for i := 0; len(l) > 0; i++ {
		v, rest, ok := consumeBytesField(l, wireListValues)
		if !ok {
			return b, false
		}
		l = rest
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = appendWireValue(b, v, depth+1); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// consumeBytesField reads one length-delimited field numbered num.
func consumeBytesField(b []byte, num protowire.Number) (v, rest []byte, ok bool) {
	n, typ, k := protowire.ConsumeTag(b)
	if k < 0 || n != num || typ != protowire.BytesType {
		return nil, nil, false
	}
	v, m := protowire.ConsumeBytes(b[k:])
	if m < 0 {
		return nil, nil, false
	}
	return v, b[k+m:], true
}
