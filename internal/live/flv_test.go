package live

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
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
	slow, err := s.subscribe(16, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.subscribe(1024, "", 0)
	if err != nil {
		t.Fatal(err)
	}
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
	// A new header while waiting is kept for the keyframe, not queued on
	// its own (it carries frame type 1 but starts no GOP).
	s.write(Tag{Type: TagVideo, Timestamp: 40, Data: []byte{0x17, 0, 0, 0, 0, 2}})
	if len(slow.ch) != 0 || !slow.waitKey {
		t.Fatal("a header ended the slow viewer's wait for a keyframe")
	}
	s.write(key(41))
	if got := <-slow.ch; got.Timestamp != 40 || !got.header() {
		t.Fatalf("after the skip the first tag is %+v, want the latest video header", got)
	}
	if got := <-slow.ch; got.Timestamp != 41 || len(slow.ch) != 0 {
		t.Fatalf("then %+v (and %d more), want the keyframe at 41 alone", got, len(slow.ch))
	}
	if n := len(fast.ch); n != 1+1+40+1+1 {
		t.Fatalf("the fast viewer has %d tags queued, want all 44", n)
	}
}

// TestEnhancedVideoTags: each Enhanced RTMP video message becomes an
// Enhanced FLV tag (IsExHeader, frame type from the payload, packet type,
// FourCC, [composition time], body) and an RTMP player gets the same
// message back.
func TestEnhancedVideoTags(t *testing.T) {
	hevcIDR := []byte{0, 0, 0, 3, 19 << 1, 1, 0xaf}  // IDR_W_RADL
	hevcTrail := []byte{0, 0, 0, 3, 1 << 1, 1, 0xd0} // TRAIL_R
	avcIDR := []byte{0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 2, 0x65, 0x88}
	av1Key := []byte{0x0a, 0x0b, 0, 0, 0, 0x42, 0xab, 0xbf, 0xc3, 0x70, 0x0b, 0xe0, 0x01} // sequence header OBU
	av1Inter := []byte{0x12, 0}                                                           // temporal delimiter only
	vp9Key := []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32, 0x34, 0x30, 0x38, 0x24, 0x1c, 0x19, 0x40, 0x18, 0x03, 0x40, 0x5f, 0xb4}
	av1C := &mp4.Av1C{Marker: 1, Version: 1, SeqLevelIdx0: 8, ChromaSubsamplingX: 1, ChromaSubsamplingY: 1, ConfigOBUs: av1Key}
	cat := func(b ...[]byte) []byte { return bytes.Join(b, nil) }
	for _, tc := range []struct {
		name     string
		m        message.Message
		ts       uint32
		data     []byte // the tag body, or its first bytes for sequence starts
		key, hdr bool
	}{
		{"HEVC CodedFrames key", &message.VideoExCodedFrames{FourCC: message.FourCCHEVC, DTS: 80 * time.Millisecond, PTSDelta: 40 * time.Millisecond, Payload: hevcIDR},
			80, cat([]byte{0x91, 'h', 'v', 'c', '1', 0, 0, 40}, hevcIDR), true, false},
		{"HEVC CodedFrames negative cts", &message.VideoExCodedFrames{FourCC: message.FourCCHEVC, DTS: 120 * time.Millisecond, PTSDelta: -40 * time.Millisecond, Payload: hevcTrail},
			120, cat([]byte{0xa1, 'h', 'v', 'c', '1', 0xff, 0xff, 0xd8}, hevcTrail), false, false},
		{"HEVC FramesX inter", &message.VideoExFramesX{FourCC: message.FourCCHEVC, DTS: time.Second, Payload: hevcTrail},
			1000, cat([]byte{0xa3, 'h', 'v', 'c', '1'}, hevcTrail), false, false},
		{"AVC FramesX IDR after AUD", &message.VideoExFramesX{FourCC: message.FourCCAVC, DTS: 0, Payload: avcIDR},
			0, cat([]byte{0x93, 'a', 'v', 'c', '1'}, avcIDR), true, false},
		{"AV1 FramesX key", &message.VideoExFramesX{FourCC: message.FourCCAV1, DTS: 40 * time.Millisecond, Payload: av1Key},
			40, cat([]byte{0x93, 'a', 'v', '0', '1'}, av1Key), true, false},
		{"AV1 CodedFrames has no cts: written as FramesX", &message.VideoExCodedFrames{FourCC: message.FourCCAV1, DTS: 80 * time.Millisecond, Payload: av1Inter},
			80, cat([]byte{0xa3, 'a', 'v', '0', '1'}, av1Inter), false, false},
		{"VP9 FramesX key", &message.VideoExFramesX{FourCC: message.FourCCVP9, DTS: 0, Payload: vp9Key},
			0, cat([]byte{0x93, 'v', 'p', '0', '9'}, vp9Key), true, false},
		{"AV1 SequenceStart", &message.VideoExSequenceStart{FourCC: message.FourCCAV1, AV1Config: av1C},
			0, []byte{0x90, 'a', 'v', '0', '1', 0x81, 0x08}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, ok, err := tagFromMessage(tc.m)
			if err != nil || !ok {
				t.Fatalf("tagFromMessage: ok %v, %v", ok, err)
			}
			if tg.Type != TagVideo || tg.Timestamp != tc.ts || !bytes.HasPrefix(tg.Data, tc.data) || (!tc.hdr && len(tg.Data) != len(tc.data)) {
				t.Fatalf("tag %d@%d % x, want %d@%d % x", tg.Type, tg.Timestamp, tg.Data, TagVideo, tc.ts, tc.data)
			}
			if tg.keyframe() != tc.key || tg.header() != tc.hdr {
				t.Fatalf("keyframe %v header %v, want %v %v", tg.keyframe(), tg.header(), tc.key, tc.hdr)
			}
			m, ok, err := messageFromTag(tg)
			if err != nil || !ok {
				t.Fatalf("messageFromTag: ok %v, %v", ok, err)
			}
			back, _, err := tagFromMessage(m)
			if err != nil || !bytes.Equal(back.Data, tg.Data) || back.Timestamp != tg.Timestamp {
				t.Fatalf("played back as %T, re-encoded % x (%v), want % x", m, back.Data, err, tg.Data)
			}
		})
	}
	for _, m := range []message.Message{
		&message.VideoExSequenceEnd{FourCC: message.FourCCHEVC},
		&message.VideoExMultitrack{TrackID: 1, Wrapped: &message.VideoExFramesX{FourCC: message.FourCCHEVC, Payload: hevcIDR}},
	} {
		if _, ok, err := tagFromMessage(m); ok || err != nil {
			t.Errorf("%T: ok %v, %v; want it skipped", m, ok, err)
		}
	}
}

// TestEnhancedAudioTags: Enhanced RTMP audio (SoundFormat 9, FourCC)
// becomes Enhanced FLV tags, sequence starts are codec headers, and an
// RTMP player gets the same messages back.
func TestEnhancedAudioTags(t *testing.T) {
	opusHead := &opus.IDHeader{Version: 1, ChannelCount: 2, PreSkip: 312, InputSampleRate: 48000}
	opusBytes, err := opusHead.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	aac := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelConfig: 2}
	for _, tc := range []struct {
		name string
		m    message.Message
		ts   uint32
		data []byte
		hdr  bool
	}{
		{"Opus SequenceStart", &message.AudioExSequenceStart{FourCC: message.FourCCOpus, OpusConfig: opusHead},
			0, append([]byte{0x90, 'O', 'p', 'u', 's'}, opusBytes...), true},
		{"Opus CodedFrames", &message.AudioExCodedFrames{FourCC: message.FourCCOpus, DTS: 20 * time.Millisecond, Payload: []byte{0xfc, 1, 2}},
			20, []byte{0x91, 'O', 'p', 'u', 's', 0xfc, 1, 2}, false},
		{"mp4a SequenceStart", &message.AudioExSequenceStart{FourCC: message.FourCCMP4A, AACConfig: aac},
			0, []byte{0x90, 'm', 'p', '4', 'a', 0x12, 0x10}, true},
		{"AC-3 SequenceStart has no body", &message.AudioExSequenceStart{FourCC: message.FourCCAC3},
			0, []byte{0x90, 'a', 'c', '-', '3'}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, ok, err := tagFromMessage(tc.m)
			if err != nil || !ok {
				t.Fatalf("tagFromMessage: ok %v, %v", ok, err)
			}
			if tg.Type != TagAudio || tg.Timestamp != tc.ts || !bytes.Equal(tg.Data, tc.data) || tg.header() != tc.hdr {
				t.Fatalf("tag %d@%d % x header %v, want %d@%d % x header %v", tg.Type, tg.Timestamp, tg.Data, tg.header(), TagAudio, tc.ts, tc.data, tc.hdr)
			}
			m, ok, err := messageFromTag(tg)
			if err != nil || !ok {
				t.Fatalf("messageFromTag: ok %v, %v", ok, err)
			}
			if back, _, err := tagFromMessage(m); err != nil || !bytes.Equal(back.Data, tg.Data) || back.Timestamp != tg.Timestamp {
				t.Fatalf("played back as %T, re-encoded % x (%v), want % x", m, back.Data, err, tg.Data)
			}
		})
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
	f.Add(uint8(TagVideo), uint32(80), []byte{0x91, 'h', 'v', 'c', '1', 0, 0, 40, 0, 0, 0, 3, 0x26, 1, 0xaf})
	f.Add(uint8(TagVideo), uint32(80), []byte{0xa3, 'a', 'v', '0', '1', 0x12, 0})
	f.Add(uint8(TagVideo), uint32(0), []byte{0x93, 'v', 'p', '0', '9', 0x82, 0x49, 0x83, 0x42, 0x00, 0x77, 0xf0, 0x32})
	f.Add(uint8(TagVideo), uint32(0), []byte{0x90, 'a', 'v', '0', '1', 0x81, 0x08, 0x0c, 0x00, 0x0a, 0x0b, 0, 0, 0, 0x42, 0xab, 0xbf, 0xc3, 0x70, 0x0b, 0xe0, 0x01})
	f.Add(uint8(TagAudio), uint32(0), []byte{0x90, 'm', 'p', '4', 'a', 0x12, 0x10})
	f.Add(uint8(TagAudio), uint32(20), []byte{0x91, 'O', 'p', 'u', 's', 0xfc, 1, 2})
	f.Add(uint8(TagAudio), uint32(0), []byte{0x90, 'O', 'p', 'u', 's', 'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0})
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
		// Enhanced FLV SequenceStarts have no timestamp in RTMP.
		seqStart := (typ == TagVideo && data[0]&0x8f == 0x80) || (typ == TagAudio && data[0] == 0x90)
		if ok && (back.Type != typ || (typ != TagScript && !seqStart && back.Timestamp != ts)) {
			t.Fatalf("tag %d@%d became %d@%d", typ, ts, back.Type, back.Timestamp)
		}
		if ok && typ == TagVideo && data[0]&0x80 != 0 {
			// Enhanced FLV frames come back as they were, but for the
			// frame type, which is found again from the payload (and
			// CodedFrames of AV1/VP9 become CodedFramesX).
			if back.Data[0]&0x80 == 0 || !bytes.Equal(back.Data[1:5], data[1:5]) || (!seqStart && !bytes.Equal(back.Data[5:], data[5:])) {
				t.Fatalf("Enhanced FLV tag % x became % x", data, back.Data)
			}
		}
	})
}
