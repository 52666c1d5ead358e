package live

import (
	"bytes"
	"errors"
	"io"
	"testing"

	streamv1 "github.com/croupier/croupier/api/synctv/stream/v1"
	"github.com/prometheus/client_golang/prometheus"
)

func TestTagRoundTrip(t *testing.T) {
	tags := []Tag{
		{Type: TagScript, Data: []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}},
		{Type: TagVideo, Timestamp: 0x01020304, Data: []byte{0x17, 0, 0, 0, 0, 1, 2}},
		{Type: TagAudio, Timestamp: 40, Data: []byte{0xaf, 1, 9}},
	}
	b := append([]byte(nil), flvHeader...)
	for _, tg := range tags {
		b = appendTag(b, tg)
	}
	r := bytes.NewReader(b)
	if err := readHeader(r); err != nil {
		t.Fatal(err)
	}
	for i, want := range tags {
		got, err := readTag(r, MaxTagBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != want.Type || got.Timestamp != want.Timestamp || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("tag %d: %+v, want %+v", i, got, want)
		}
	}
	if _, err := readTag(r, MaxTagBytes); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last tag: %v, want EOF", err)
	}
	if !tags[1].keyframe() || !tags[1].header() || tags[2].header() {
		t.Fatal("keyframe/header classification")
	}
}

// TestSlowViewerSkipsToKeyframe: a viewer that does not read loses tags
// up to the next keyframe, which arrives after the codec headers; a
// reading viewer loses nothing.
func TestSlowViewerSkipsToKeyframe(t *testing.T) {
	s := newStream("r/main", "r", "main", "a", 1, false, 16, 1<<20, newMetrics(prometheus.NewRegistry()))
	vhdr := Tag{Type: TagVideo, Data: []byte{0x17, 0, 0, 0, 0, 1}}
	s.write(vhdr)
	slow, fast := s.subscribe(16), s.subscribe(1024)
	key := func(ts uint32) Tag { return Tag{Type: TagVideo, Timestamp: ts, Data: []byte{0x17, 1, 0, 0, 0, 9}} }
	inter := func(ts uint32) Tag { return Tag{Type: TagVideo, Timestamp: ts, Data: []byte{0x27, 1, 0, 0, 0, 9}} }
	s.write(key(0))
	for ts := uint32(1); ts < 40; ts++ {
		s.write(inter(ts))
	}
	if !slow.waitKey || slow.dropped == 0 {
		t.Fatal("the slow viewer's queue overflowed but it is not waiting for a keyframe")
	}
	for len(slow.ch) > 0 {
		<-slow.ch
	}
	s.write(inter(40)) // dropped: not a keyframe
	s.write(key(41))
	if got := <-slow.ch; got.Timestamp != 0 || got.header() != true {
		t.Fatalf("after the skip the first tag is %+v, want the video header", got)
	}
	if got := <-slow.ch; got.Timestamp != 41 {
		t.Fatalf("then %+v, want the keyframe at 41", got)
	}
	if n := len(fast.ch); n != 1+1+40+1 {
		t.Fatalf("the fast viewer has %d tags queued, want all 43", n)
	}
}

// FuzzReadTag: our FLV tag reader never panics, refuses oversized tags
// before reading them, and what it reads re-encodes to the same bytes.
func FuzzReadTag(f *testing.F) {
	f.Add(appendTag(nil, Tag{Type: TagVideo, Timestamp: 7, Data: []byte{0x17, 0, 0, 0, 0}}))
	f.Add(appendTag(nil, Tag{Type: TagAudio, Timestamp: 1 << 31, Data: []byte{0xaf, 1}}))
	f.Add([]byte{9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, err := readTag(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		enc := appendTag(nil, tg)
		// The stream id bytes (8-10) are not kept; compare the rest.
		if len(enc) > len(b) || !bytes.Equal(enc[:8], b[:8]) || !bytes.Equal(enc[11:], b[11:len(enc)]) {
			t.Fatalf("re-encoded %x from %x", enc, b[:len(enc)])
		}
	})
}

// FuzzRelayPacket: the relay framing (RtmpPacket → tag) refuses what is
// out of range and round-trips what it accepts.
func FuzzRelayPacket(f *testing.F) {
	f.Add(int32(0), int64(0), []byte{0x17, 0})
	f.Add(int32(2), int64(1)<<40, []byte{})
	f.Add(int32(7), int64(-1), []byte{1})
	f.Fuzz(func(t *testing.T, typ int32, ts int64, data []byte) {
		p := &streamv1.RtmpPacket{Type: streamv1.RtmpPacket_PacketType(typ), Timestamp: ts, Data: data}
		tg, err := tagFromPacket(p)
		if err != nil {
			return
		}
		q := packetFromTag(tg)
		if q.GetType() != p.GetType() || q.GetTimestamp() != p.GetTimestamp() || !bytes.Equal(q.GetData(), p.GetData()) {
			t.Fatalf("round trip %v -> %v", p, q)
		}
	})
}

// FuzzMessageFromTag: turning a tag back into an RTMP message for a
// player never panics, and a message it makes encodes back into a tag
// with the same type and timestamp.
func FuzzMessageFromTag(f *testing.F) {
	f.Add(uint8(TagVideo), uint32(40), []byte{0x27, 1, 0, 0, 0, 9})
	f.Add(uint8(TagVideo), uint32(0), []byte{0x17, 0, 0, 0, 0, 1, 2, 3})
	f.Add(uint8(TagAudio), uint32(23), []byte{0xaf, 0, 0x12, 0x10})
	f.Add(uint8(TagAudio), uint32(23), []byte{0x2f, 1, 2})
	f.Add(uint8(TagScript), uint32(0), []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 5})
	f.Fuzz(func(t *testing.T, typ uint8, ts uint32, data []byte) {
		m, ok, err := messageFromTag(Tag{Type: typ, Timestamp: ts, Data: data})
		if err != nil || !ok {
			return
		}
		back, ok, err := tagFromMessage(m)
		if err != nil {
			t.Fatalf("%T made from %x does not encode: %v", m, data, err)
		}
		if ok && (back.Type != typ || (typ != TagScript && back.Timestamp != ts)) {
			t.Fatalf("tag %d@%d became %d@%d", typ, ts, back.Type, back.Timestamp)
		}
	})
}
