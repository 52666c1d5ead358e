package live

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/flac"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
)

// Enhanced RTMP / Enhanced FLV video (the "Enhanced RTMP" v1 spec of the
// Veovera group): the first byte of a video tag body is
//
//	IsExHeader (1 bit, set) | FrameType (3 bits) | PacketType (4 bits)
//
// then a FourCC (hvc1, av01, vp09, avc1), then per packet type the
// decoder configuration record (SequenceStart), a signed 24-bit
// composition time and the frames (CodedFrames; AVC/HEVC only carry the
// composition time), or the frames alone (CodedFramesX, composition time
// zero).
const (
	exHeaderBit    = 0x80
	frameTypeKey   = 1
	frameTypeInter = 2
)

// gortmplib v1.0.1 reads the ex messages but drops their FrameType bits
// (and writes them as 0), so keyframes are found in the payload instead:
// a relay or GOP cache that trusted the publisher's bits would have
// nothing to go on anyway.

// exVideo reports an Enhanced FLV video tag.
func (t Tag) exVideo() bool {
	return t.Type == TagVideo && len(t.Data) >= 5 && t.Data[0]&exHeaderBit != 0
}

// exVideoHeader is the first five bytes of an Enhanced FLV video tag.
func exVideoHeader(key bool, pt message.VideoExType, fourCC message.FourCC) []byte {
	ft := byte(frameTypeInter)
	if key {
		ft = frameTypeKey
	}
	b := []byte{exHeaderBit | ft<<4 | byte(pt)&0x0f, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(fourCC))
	return b
}

// hasCompositionTime: CodedFrames of these codecs carry a composition
// time offset (the others are never reordered on the wire).
func hasCompositionTime(c message.FourCC) bool {
	return c == message.FourCCAVC || c == message.FourCCHEVC
}

// exKeyframe reports whether a frame of the given codec starts a GOP: an
// IRAP (HEVC) or IDR (AVC) NAL unit in the length-prefixed access unit, a
// sequence header OBU (AV1 encoders repeat it at each key frame), a VP9
// key frame header.
func exKeyframe(c message.FourCC, payload []byte) bool {
	switch c {
	case message.FourCCHEVC, message.FourCCAVC:
		// NAL units with 4-byte lengths, as every RTMP muxer writes them
		// (lengthSizeMinusOne = 3).
		for p := payload; len(p) > 4; {
			n := binary.BigEndian.Uint32(p)
			p = p[4:]
			if n == 0 || uint64(n) > uint64(len(p)) {
				return false
			}
			if c == message.FourCCHEVC {
				if typ := p[0] >> 1 & 0x3f; typ >= 16 && typ <= 23 {
					return true
				}
			} else if p[0]&0x1f == 5 {
				return true
			}
			p = p[n:]
		}
		return false
	case message.FourCCAV1:
		var bs av1.Bitstream
		return bs.Unmarshal(payload) == nil && av1.IsRandomAccess2(bs)
	case message.FourCCVP9:
		return vp9.IsRandomAccess(payload)
	}
	return false
}

// exVideoTag turns an Enhanced RTMP video message into its Enhanced FLV
// tag. ok is false for ex messages not relayed (SequenceEnd, Metadata,
// Multitrack: a second track has no place in a single-track FLV viewer).
func exVideoTag(m message.Message) (t Tag, ok bool, err error) {
	switch m := m.(type) {
	case *message.VideoExSequenceStart:
		var box mp4.IBox
		switch {
		case m.FourCC == message.FourCCHEVC && m.HEVCConfig != nil:
			box = m.HEVCConfig
		case m.FourCC == message.FourCCAV1 && m.AV1Config != nil:
			box = m.AV1Config
		case m.FourCC == message.FourCCVP9 && m.VP9Config != nil:
			box = m.VP9Config
		case m.FourCC == message.FourCCAVC && m.AVCConfig != nil:
			box = m.AVCConfig
		default:
			return Tag{}, false, nil
		}
		var buf bytes.Buffer
		buf.Write(exVideoHeader(true, message.VideoExTypeSequenceStart, m.FourCC))
		if _, err := mp4.Marshal(&buf, box, mp4.Context{}); err != nil {
			return Tag{}, false, fmt.Errorf("live: %v config: %w", m.FourCC, err)
		}
		// The message has no timestamp: the configuration applies from
		// the next frame, and viewers get it before any frame anyway.
		return Tag{Type: TagVideo, Data: buf.Bytes()}, true, nil
	case *message.VideoExCodedFrames:
		if !hasCompositionTime(m.FourCC) {
			// Nothing to carry but the frames: the CodedFramesX layout.
			return exFramesTag(message.VideoExTypeFramesX, m.FourCC, m.DTS, nil, m.Payload), true, nil
		}
		cts := uint32(m.PTSDelta / time.Millisecond)
		return exFramesTag(message.VideoExTypeCodedFrames, m.FourCC, m.DTS, []byte{byte(cts >> 16), byte(cts >> 8), byte(cts)}, m.Payload), true, nil
	case *message.VideoExFramesX:
		return exFramesTag(message.VideoExTypeFramesX, m.FourCC, m.DTS, nil, m.Payload), true, nil
	}
	return Tag{}, false, nil
}

func exFramesTag(pt message.VideoExType, c message.FourCC, dts time.Duration, cts, payload []byte) Tag {
	data := make([]byte, 0, 5+len(cts)+len(payload))
	data = append(data, exVideoHeader(exKeyframe(c, payload), pt, c)...)
	data = append(data, cts...)
	return Tag{Type: TagVideo, Timestamp: ms(dts), Data: append(data, payload...)}
}

// exVideoMessage turns an Enhanced FLV video tag back into the ex message
// an RTMP player gets (exVideoTag's inverse; gortmplib writes FrameType
// 0, see above). ok is false for packet types and codecs not played.
func exVideoMessage(t Tag) (m message.Message, ok bool, err error) {
	dts := time.Duration(t.Timestamp) * time.Millisecond
	c := message.FourCC(binary.BigEndian.Uint32(t.Data[1:5]))
	body := t.Data[5:]
	switch message.VideoExType(t.Data[0] & 0x0f) {
	case message.VideoExTypeSequenceStart:
		s := &message.VideoExSequenceStart{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: playStreamID, FourCC: c}
		var box mp4.IBox
		switch c {
		case message.FourCCHEVC:
			s.HEVCConfig = &mp4.HvcC{}
			box = s.HEVCConfig
		case message.FourCCAV1:
			s.AV1Config = &mp4.Av1C{}
			box = s.AV1Config
		case message.FourCCVP9:
			s.VP9Config = &mp4.VpcC{}
			box = s.VP9Config
		case message.FourCCAVC:
			s.AVCConfig = &mp4.AVCDecoderConfiguration{}
			s.AVCConfig.SetType(mp4.BoxTypeAvcC())
			box = s.AVCConfig
		default:
			return nil, false, nil
		}
		if _, err := mp4.Unmarshal(bytes.NewReader(body), uint64(len(body)), box, mp4.Context{}); err != nil {
			return nil, false, fmt.Errorf("%w: %v config: %w", errFLV, c, err)
		}
		return s, true, nil
	case message.VideoExTypeCodedFrames:
		if !knownVideoFourCC(c) {
			return nil, false, nil
		}
		f := &message.VideoExCodedFrames{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: playStreamID, DTS: dts, FourCC: c, Payload: body}
		if hasCompositionTime(c) {
			if len(body) < 3 {
				return nil, false, fmt.Errorf("%w: %v CodedFrames of %d bytes", errFLV, c, len(t.Data))
			}
			f.PTSDelta = time.Duration(int32(uint32(body[0])<<24|uint32(body[1])<<16|uint32(body[2])<<8)>>8) * time.Millisecond
			f.Payload = body[3:]
		}
		return f, true, nil
	case message.VideoExTypeFramesX:
		if !knownVideoFourCC(c) {
			return nil, false, nil
		}
		return &message.VideoExFramesX{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: playStreamID, DTS: dts, FourCC: c, Payload: body}, true, nil
	}
	return nil, false, nil
}

func knownVideoFourCC(c message.FourCC) bool {
	switch c {
	case message.FourCCHEVC, message.FourCCAV1, message.FourCCVP9, message.FourCCAVC:
		return true
	}
	return false
}

// Enhanced RTMP audio: SoundFormat 9 (ExHeader) in the top nibble, the
// packet type in the bottom one, the FourCC (Opus, fLaC, ac-3, .mp3,
// mp4a), then the codec's configuration (SequenceStart: Opus ID header,
// FLAC STREAMINFO, AudioSpecificConfig; none for AC-3/MP3) or frames
// (CodedFrames). Every audio frame is a random access point.
const soundFormatExHeader = 9

// exAudio reports an Enhanced FLV audio tag.
func (t Tag) exAudio() bool {
	return t.Type == TagAudio && len(t.Data) >= 5 && t.Data[0]>>4 == soundFormatExHeader
}

func exAudioHeader(pt message.AudioExType, c message.FourCC) []byte {
	b := []byte{soundFormatExHeader<<4 | byte(pt)&0x0f, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(c))
	return b
}

// exAudioTag turns an Enhanced RTMP audio message into its Enhanced FLV
// tag. ok is false for what is not relayed (multichannel configuration,
// multitrack, sequence end).
func exAudioTag(m message.Message) (t Tag, ok bool, err error) {
	switch m := m.(type) {
	case *message.AudioExSequenceStart:
		var cfg []byte
		switch {
		case m.FourCC == message.FourCCOpus && m.OpusConfig != nil:
			cfg, err = m.OpusConfig.Marshal()
		case m.FourCC == message.FourCCFLAC && m.FlacConfig != nil:
			cfg, err = m.FlacConfig.Marshal()
		case m.FourCC == message.FourCCMP4A && m.AACConfig != nil:
			cfg, err = m.AACConfig.Marshal()
		case m.FourCC == message.FourCCAC3, m.FourCC == message.FourCCMP3:
		default:
			return Tag{}, false, nil
		}
		if err != nil {
			return Tag{}, false, fmt.Errorf("live: %v config: %w", m.FourCC, err)
		}
		return Tag{Type: TagAudio, Data: append(exAudioHeader(message.AudioExTypeSequenceStart, m.FourCC), cfg...)}, true, nil
	case *message.AudioExCodedFrames:
		return Tag{Type: TagAudio, Timestamp: ms(m.DTS), Data: append(exAudioHeader(message.AudioExTypeCodedFrames, m.FourCC), m.Payload...)}, true, nil
	}
	return Tag{}, false, nil
}

// exAudioMessage turns an Enhanced FLV audio tag back into the ex message
// an RTMP player gets.
func exAudioMessage(t Tag) (m message.Message, ok bool, err error) {
	c := message.FourCC(binary.BigEndian.Uint32(t.Data[1:5]))
	body := t.Data[5:]
	switch message.AudioExType(t.Data[0] & 0x0f) {
	case message.AudioExTypeSequenceStart:
		s := &message.AudioExSequenceStart{ChunkStreamID: message.AudioChunkStreamID, MessageStreamID: playStreamID, FourCC: c}
		switch c {
		case message.FourCCOpus:
			s.OpusConfig = &opus.IDHeader{}
			err = s.OpusConfig.Unmarshal(body)
		case message.FourCCFLAC:
			s.FlacConfig = &flac.StreamInfo{}
			err = s.FlacConfig.Unmarshal(body)
		case message.FourCCMP4A:
			s.AACConfig = &mpeg4audio.AudioSpecificConfig{}
			err = s.AACConfig.Unmarshal(body)
		case message.FourCCAC3, message.FourCCMP3:
			if len(body) != 0 {
				return nil, false, fmt.Errorf("%w: %v SequenceStart with a body", errFLV, c)
			}
		default:
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v config: %w", errFLV, c, err)
		}
		return s, true, nil
	case message.AudioExTypeCodedFrames:
		switch c {
		case message.FourCCOpus, message.FourCCFLAC, message.FourCCMP4A, message.FourCCAC3, message.FourCCMP3:
		default:
			return nil, false, nil
		}
		if len(body) == 0 {
			return nil, false, fmt.Errorf("%w: empty %v CodedFrames", errFLV, c)
		}
		return &message.AudioExCodedFrames{ChunkStreamID: message.AudioChunkStreamID, MessageStreamID: playStreamID,
			DTS: time.Duration(t.Timestamp) * time.Millisecond, FourCC: c, Payload: body}, true, nil
	}
	return nil, false, nil
}
