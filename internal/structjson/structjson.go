// Package structjson writes google.protobuf.Struct values as JSON: the
// document protojson writes (keys sorted, numbers as encoding/json writes a
// float64) without its reflection, several times faster. The audit log
// encodes every invocation's payload with it, the REST API every result.
package structjson

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// AppendStruct appends s as JSON: the same document protojson.Marshal
// writes for a Struct, without its random insignificant spaces. A NaN or
// infinite number, which JSON cannot hold, is an error, as in protojson.
//
// A Value with no kind set, which protojson refuses, is written as null:
// the audit log records such a payload rather than nothing.
func AppendStruct(b []byte, s *structpb.Struct) ([]byte, error) {
	return appendStructDepth(b, s, 0, false)
}

// AppendStructStrict is AppendStruct that also refuses a Value with no kind
// set, as protojson does: it writes what protojson writes or fails where
// protojson fails.
func AppendStructStrict(b []byte, s *structpb.Struct) ([]byte, error) {
	return appendStructDepth(b, s, 0, true)
}

var errNoKind = errors.New("a Value has no kind set")

// maxStructDepth stops a document nested past what protobuf decodes (the
// invoke path refuses payloads nested past 64 levels before they get here).
const maxStructDepth = 10000

var errStructTooDeep = errors.New("struct nested too deep")

func appendStructDepth(b []byte, s *structpb.Struct, depth int, strict bool) ([]byte, error) {
	if depth > maxStructDepth {
		return b, errStructTooDeep
	}
	fields := s.GetFields()
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, fields[k], depth+1, strict); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v *structpb.Value, depth int, strict bool) ([]byte, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return appendJSONString(b, k.StringValue), nil
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, errors.New("number is not finite")
		}
		return appendFloat(b, f), nil
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(b, k.BoolValue), nil
	case *structpb.Value_StructValue:
		return appendStructDepth(b, k.StructValue, depth, strict)
	case *structpb.Value_ListValue:
		if depth > maxStructDepth {
			return b, errStructTooDeep
		}
		b = append(b, '[')
		for i, e := range k.ListValue.GetValues() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, e, depth+1, strict); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case *structpb.Value_NullValue:
		return append(b, "null"...), nil
	default: // no kind set
		if strict {
			return b, errNoKind
		}
		return append(b, "null"...), nil
	}
}

// appendFloat writes f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as protojson escapes
// it.
func AppendString(b []byte, s string) []byte { return appendJSONString(b, s) }

// appendJSONString writes s as a JSON string, escaped as protojson escapes
// it; invalid UTF-8 (which protojson refuses, and which a Struct decoded
// from the wire cannot hold) becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
