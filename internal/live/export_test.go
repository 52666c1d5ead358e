package live

import "io"

// The black-box tests read HTTP-FLV with our own reader: Debian's ffmpeg
// 5.1 cannot read Enhanced FLV.

// ReadFLVHeader reads and checks an FLV file header.
func ReadFLVHeader(r io.Reader) error { return readHeader(r) }

// ReadFLVTag reads one FLV tag.
func ReadFLVTag(r io.Reader) (Tag, error) { return readTag(r, MaxTagBytes) }

// Keyframe reports a video tag of a keyframe.
func (t Tag) Keyframe() bool { return t.keyframe() }

// HasStream reports whether a stream of path is on the node (published or
// relayed here).
func (n *Node) HasStream(path string) bool { return n.lookup(path) != nil }
