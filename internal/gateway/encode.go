package gateway

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/croupier/croupier/api/netsvr"
)

// marshalFrame encodes msg as a business frame of cmd. It never returns
// nil: a frame the gateway owes a business must reach it, because a lost
// ConnOpen hides a client from the business and a lost answer shifts every
// later answer onto the wrong request (the protocol has no correlation id).
//
// proto3 refuses to encode a string field holding invalid UTF-8. Every
// string the gateway sends is either decoded from a business message
// (checked by the decoder) or made valid where it enters (validUTF8, the
// custom uniqId check), so a failure here is a bug: it is logged at error
// level and the frame is sent with each invalid byte sequence replaced by
// U+FFFD (msg is modified), or, should even that not encode, with an
// empty body.
func (g *Gateway) marshalFrame(cmd netsvr.Cmd, msg proto.Message) []byte {
	body, err := proto.Marshal(msg)
	if err != nil {
		sanitizeUTF8(msg.ProtoReflect())
		var err2 error
		if body, err2 = proto.Marshal(msg); err2 != nil {
			body = nil // an empty body decodes as the message with no fields set
		}
		g.log.Error("gateway: business frame does not encode; sent with invalid UTF-8 replaced by U+FFFD (a bug: report it)",
			"cmd", cmd.String(), "err", err, "empty_body", err2 != nil)
	}
	return appendFrame(make([]byte, 0, 8+len(body)), uint32(cmd), body)
}

// validUTF8 returns s with each invalid UTF-8 sequence replaced by U+FFFD
// (s itself when it is valid). Strings from the client side (query,
// headers) go through it before they reach a proto string field.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// sanitizeUTF8 makes every string of m valid UTF-8 (validUTF8): singular
// and repeated fields, map keys and values, nested messages.
func sanitizeUTF8(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if nv, changed := sanitizeValue(fd, l.Get(i)); changed {
					l.Set(i, nv)
				}
			}
		case fd.IsMap():
			sanitizeMap(fd, v.Map())
		default:
			if nv, changed := sanitizeValue(fd, v); changed {
				m.Set(fd, nv)
			}
		}
		return true
	})
}

// sanitizeMap fixes a map's string keys and values after ranging over it,
// since entries are not added or removed while it is ranged over.
func sanitizeMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map) {
	type entry struct {
		old, key protoreflect.MapKey
		val      protoreflect.Value
		rekey    bool
	}
	var fixed []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		e := entry{old: k, key: k, val: v}
		if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
			e.key, e.rekey = protoreflect.ValueOfString(validUTF8(k.String())).MapKey(), true
		}
		nv, changed := sanitizeValue(fd.MapValue(), v)
		if e.rekey || changed {
			e.val = nv
			fixed = append(fixed, e)
		}
		return true
	})
	for _, e := range fixed {
		if e.rekey {
			mp.Clear(e.old)
		}
		mp.Set(e.key, e.val)
	}
}

// sanitizeValue returns a valid copy of a string value (changed: true) and
// fixes a message value in place.
func sanitizeValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if s := v.String(); !utf8.ValidString(s) {
			return protoreflect.ValueOfString(validUTF8(s)), true
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		sanitizeUTF8(v.Message())
	}
	return v, false
}
