// Package prototest helps tests that keep a hand-written walk over a
// message in step with its proto definition.
package prototest

import (
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// StringFields returns the paths of the string fields of md and of the
// messages in it, sorted: "root.field.sub", a map's key and value as
// "….key" and "….value". A message whose full name is in stop is not
// entered; its path is listed as "path (note)" when stop gives it a note.
func StringFields(root string, md protoreflect.MessageDescriptor, stop map[protoreflect.FullName]string) []string {
	var out []string
	inside := map[protoreflect.FullName]bool{} // the messages on the path: a message in itself would never end
	var walk func(path string, md protoreflect.MessageDescriptor)
	walk = func(path string, md protoreflect.MessageDescriptor) {
		if note, ok := stop[md.FullName()]; ok {
			if note != "" {
				out = append(out, path+" ("+note+")")
			}
			return
		}
		if inside[md.FullName()] {
			panic("prototest: " + path + " holds a message it is in (" + string(md.FullName()) + "); put it in stop")
		}
		inside[md.FullName()] = true
		defer delete(inside, md.FullName())
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			p := path + "." + string(fd.Name())
			switch {
			case fd.IsMap():
				if fd.MapKey().Kind() == protoreflect.StringKind {
					out = append(out, p+".key")
				}
				if v := fd.MapValue(); v.Kind() == protoreflect.StringKind {
					out = append(out, p+".value")
				} else if v.Message() != nil {
					walk(p+".value", v.Message())
				}
			case fd.Kind() == protoreflect.StringKind:
				out = append(out, p)
			case fd.Message() != nil:
				walk(p, fd.Message())
			}
		}
	}
	walk(root, md)
	slices.Sort(out)
	return out
}
