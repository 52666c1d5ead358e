// Package wirecheck checks encoded protobuf for what protobuf's decoder
// refuses — malformed wire data, strings that are not UTF-8, nesting past its
// recursion limit — without decoding it: for bytes passed on still encoded
// (a game server's result, invoke.DecodeResponse) and before decoders that
// check none of it (vtprotobuf's, which also recurses without a limit).
package wirecheck

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire layout of google.protobuf.Struct and its parts.
const (
	structFields protowire.Number = 1 // Struct.fields: map<string, Value>
	entryKey     protowire.Number = 1 // map entry key
	entryValue   protowire.Number = 2 // map entry value
	valueNull    protowire.Number = 1 // Value.null_value (enum)
	valueNumber  protowire.Number = 2 // Value.number_value (double)
	valueString  protowire.Number = 3 // Value.string_value
	valueBool    protowire.Number = 4 // Value.bool_value
	valueStruct  protowire.Number = 5 // Value.struct_value
	valueList    protowire.Number = 6 // Value.list_value
	listValues   protowire.Number = 1 // ListValue.values
)

// maxDepth is protobuf-go's default recursion limit: it refuses a message
// nested maxDepth deep (the message decoded being at depth 0; a map entry
// is a message).
const maxDepth = protowire.DefaultRecursionLimit

var errTooDeep = errors.New("nested too deep")

// ErrEntryWireType is StructVT's refusal of a map entry whose key or value
// is not length-delimited.
var ErrEntryWireType = errors.New("map entry key or value of the wrong wire type")

// checker walks a Struct; with vt set it also refuses what vtprotobuf's
// decoder would read otherwise than protobuf's (StructVT).
type checker struct{ vt bool }

// Struct reports whether b is a google.protobuf.Struct that protobuf's
// decoder takes: well formed, strings valid UTF-8, nesting within its
// recursion limit, counting from depth (the Struct's own nesting: 0 for a
// message decoded on its own, 1 for a field of one, …). It allocates
// nothing. A field of an unexpected number or wire type is an unknown field
// to a decoder, so it is accepted too (FuzzStruct).
func Struct(b []byte, depth int) error { return checker{}.structure(b, depth) }

// StructVT is Struct for bytes that vtprotobuf's decoder will decode. That
// decoder reads a map entry's key and value as length-delimited whatever
// their wire type, where protobuf's skips one of another type as unknown,
// so the two would decode different data; StructVT refuses such an entry
// (ErrEntryWireType), which no encoder writes.
func StructVT(b []byte, depth int) error { return checker{vt: true}.structure(b, depth) }

// StringMapEntryVT checks one entry of a map<string, string> field for
// vtprotobuf's decoder: key and value length-delimited (ErrEntryWireType
// otherwise; see StructVT) and valid UTF-8, as protobuf's decoder requires.
func StringMapEntryVT(b []byte) error {
	for len(b) > 0 {
		num, typ, v, rest, err := NextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num != entryKey && num != entryValue {
			continue // an unknown field to a decoder
		}
		if typ != protowire.BytesType {
			return ErrEntryWireType
		}
		if !utf8.Valid(v) {
			return errors.New("string is not valid UTF-8")
		}
	}
	return nil
}

func (c checker) structure(b []byte, depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	for len(b) > 0 {
		num, typ, v, rest, err := NextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num != structFields || typ != protowire.BytesType {
			continue // a field of another wire type is an unknown field to a decoder
		}
		for len(v) > 0 {
			num, typ, ev, erest, err := NextField(v)
			if err != nil {
				return err
			}
			v = erest
			switch {
			case c.vt && (num == entryKey || num == entryValue) && typ != protowire.BytesType:
				return ErrEntryWireType
			case num == entryKey && typ == protowire.BytesType:
				if !utf8.Valid(ev) {
					return errors.New("key is not valid UTF-8")
				}
			case num == entryValue && typ == protowire.BytesType:
				if err := c.value(ev, depth+2); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c checker) value(b []byte, depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	for len(b) > 0 {
		num, typ, v, rest, err := NextField(b)
		if err != nil {
			return err
		}
		b = rest
		want := protowire.BytesType
		switch num {
		case valueNull, valueBool:
			want = protowire.VarintType
		case valueNumber:
			want = protowire.Fixed64Type
		case valueString, valueStruct, valueList:
		default:
			continue
		}
		if typ != want {
			continue // an unknown field to a decoder
		}
		switch num {
		case valueString:
			if !utf8.Valid(v) {
				return errors.New("string is not valid UTF-8")
			}
		case valueStruct:
			if err := c.structure(v, depth+1); err != nil {
				return err
			}
		case valueList:
			if err := c.list(v, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c checker) list(b []byte, depth int) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	for len(b) > 0 {
		num, typ, v, rest, err := NextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num != listValues || typ != protowire.BytesType {
			continue
		}
		if err := c.value(v, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// NextField splits the first field off the message b: its number, type,
// contents (a length-delimited field's payload; nil for the other types)
// and the rest of b.
func NextField(b []byte) (num protowire.Number, typ protowire.Type, v, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, protowire.ParseError(n)
	}
	if num > protowire.MaxValidNumber { // ConsumeTag accepts up to MaxInt32
		return 0, 0, nil, nil, errors.New("invalid field number")
	}
	b = b[n:]
	if typ == protowire.BytesType {
		v, n = protowire.ConsumeBytes(b)
	} else {
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return 0, 0, nil, nil, protowire.ParseError(n)
	}
	return num, typ, v, b[n:], nil
}
