package live

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// FLV tag types (FLV spec v10, E.4.1).
const (
	TagAudio  = 8
	TagVideo  = 9
	TagScript = 18
)

// MaxTagBytes bounds one tag body: FLV's 24-bit size field, and what a
// relay accepts per packet.
const MaxTagBytes = 1<<24 - 1

// Tag is one FLV tag: its type, timestamp (ms, decode time) and body.
type Tag struct {
	Type      uint8
	Timestamp uint32
	Data      []byte
	// queued is when the tag was queued for a viewer (not encoded): a
	// viewer that reads a tag older than MaxLag is skipped ahead.
	queued time.Time
}

// keyframe reports a video tag of a keyframe (frame type 1; in an
// Enhanced FLV tag the frame type is 3 bits after the IsExHeader bit).
func (t Tag) keyframe() bool {
	return t.Type == TagVideo && len(t.Data) > 0 && t.Data[0]>>4&7 == frameTypeKey
}

// header reports a codec header: onMetaData, the AVC/HEVC decoder
// configuration (packet type 0, or an Enhanced FLV SequenceStart) or the
// AAC AudioSpecificConfig.
func (t Tag) header() bool {
	switch t.Type {
	case TagScript:
		return true
	case TagVideo:
		if t.exVideo() {
			return message.VideoExType(t.Data[0]&0x0f) == message.VideoExTypeSequenceStart
		}
		return len(t.Data) > 1 && t.Data[0]&exHeaderBit == 0 && t.Data[1] == 0
	case TagAudio:
		if t.exAudio() {
			return message.AudioExType(t.Data[0]&0x0f) == message.AudioExTypeSequenceStart
		}
		return len(t.Data) > 1 && t.Data[0]>>4 == message.CodecMPEG4Audio && t.Data[1] == 0
	}
	return false
}

// flvHeader is the file header (audio and video flags set) and the first
// PreviousTagSize (0).
var flvHeader = []byte{'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0}

// appendTag appends t and its PreviousTagSize to b.
func appendTag(b []byte, t Tag) []byte {
	n := len(t.Data)
	b = append(b, t.Type, byte(n>>16), byte(n>>8), byte(n),
		byte(t.Timestamp>>16), byte(t.Timestamp>>8), byte(t.Timestamp), byte(t.Timestamp>>24),
		0, 0, 0)
	b = append(b, t.Data...)
	return binary.BigEndian.AppendUint32(b, uint32(11+n))
}

// errFLV is a malformed FLV stream.
var errFLV = errors.New("live: malformed FLV")

// readHeader reads and checks an FLV file header and the first
// PreviousTagSize.
func readHeader(r io.Reader) error {
	var h [13]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' || binary.BigEndian.Uint32(h[5:9]) != 9 {
		return fmt.Errorf("%w: not an FLV header", errFLV)
	}
	return nil
}

// readTag reads one tag and its PreviousTagSize; bodies over max bytes
// are refused before they are read.
func readTag(r io.Reader, max int) (Tag, error) {
	var h [11]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Tag{}, err
	}
	n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if n > max {
		return Tag{}, fmt.Errorf("%w: tag of %d bytes (at most %d)", errFLV, n, max)
	}
	switch h[0] {
	case TagAudio, TagVideo, TagScript:
	default:
		return Tag{}, fmt.Errorf("%w: tag type %d", errFLV, h[0])
	}
	t := Tag{Type: h[0], Timestamp: uint32(h[7])<<24 | uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]), Data: make([]byte, n)}
	if _, err := io.ReadFull(r, t.Data); err != nil {
		return Tag{}, err
	}
	var prev [4]byte
	if _, err := io.ReadFull(r, prev[:]); err != nil {
		return Tag{}, err
	}
	if binary.BigEndian.Uint32(prev[:]) != uint32(11+n) {
		return Tag{}, fmt.Errorf("%w: PreviousTagSize %d after a tag of %d bytes", errFLV, binary.BigEndian.Uint32(prev[:]), 11+n)
	}
	return t, nil
}

// tagFromMessage turns an RTMP media or data message into its FLV tag.
// ok is false for messages that are not media (commands, control) and for
// codecs this server does not relay.
func tagFromMessage(m message.Message) (t Tag, ok bool, err error) {
	switch m := m.(type) {
	case *message.VideoExSequenceStart, *message.VideoExCodedFrames, *message.VideoExFramesX:
		return exVideoTag(m)
	case *message.AudioExSequenceStart, *message.AudioExCodedFrames:
		return exAudioTag(m)
	case *message.Video:
		var body []byte
		switch m.Type {
		case message.VideoTypeConfig:
			var buf bytes.Buffer
			switch {
			case m.Codec == message.CodecH264 && m.AVCConfig != nil:
				_, err = mp4.Marshal(&buf, m.AVCConfig, mp4.Context{})
			case m.Codec == message.CodecH265 && m.HEVCConfig != nil:
				_, err = mp4.Marshal(&buf, m.HEVCConfig, mp4.Context{})
			default:
				return Tag{}, false, nil
			}
			if err != nil {
				return Tag{}, false, fmt.Errorf("live: video config: %w", err)
			}
			body = buf.Bytes()
		case message.VideoTypeAU:
			body = m.AU
		default:
			return Tag{}, false, nil
		}
		data := make([]byte, 5+len(body))
		data[0] = 2 << 4
		if m.IsKeyFrame {
			data[0] = 1 << 4
		}
		data[0] |= m.Codec
		data[1] = byte(m.Type)
		cts := uint32(m.PTSDelta / time.Millisecond)
		data[2], data[3], data[4] = byte(cts>>16), byte(cts>>8), byte(cts)
		copy(data[5:], body)
		return Tag{Type: TagVideo, Timestamp: ms(m.DTS), Data: data}, true, nil
	case *message.Audio:
		var body []byte
		if m.Codec == message.CodecMPEG4Audio && m.AACType == message.AudioAACTypeConfig {
			if m.AACConfig == nil {
				return Tag{}, false, nil
			}
			body, err = m.AACConfig.Marshal()
			if err != nil {
				return Tag{}, false, fmt.Errorf("live: AAC config: %w", err)
			}
		} else {
			body = m.AU
		}
		hdr := m.Codec<<4 | byte(m.Rate)<<2 | byte(m.Depth)<<1
		if m.IsStereo {
			hdr |= 1
		}
		data := []byte{hdr}
		if m.Codec == message.CodecMPEG4Audio {
			data = append(data, byte(m.AACType))
		}
		return Tag{Type: TagAudio, Timestamp: ms(m.DTS), Data: append(data, body...)}, true, nil
	case *message.DataAMF0:
		p := m.Payload
		// OBS and ffmpeg send "@setDataFrame", "onMetaData", {...}; the
		// FLV script tag is "onMetaData", {...}.
		if len(p) >= 2 && p[0] == "@setDataFrame" {
			p = p[1:]
		}
		if len(p) < 2 || p[0] != "onMetaData" {
			return Tag{}, false, nil
		}
		data, err := amf0.Data(p).Marshal()
		if err != nil {
			return Tag{}, false, fmt.Errorf("live: metadata: %w", err)
		}
		return Tag{Type: TagScript, Data: data}, true, nil
	}
	return Tag{}, false, nil
}

func ms(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

// playStreamID is the RTMP message stream of a play session (the one
// createStream answers, as gortmplib numbers it).
const playStreamID = 0x1000000

// messageFromTag turns an FLV tag back into the RTMP message a player
// gets (tagFromMessage's inverse). ok is false for tags a player is not
// sent (codecs gortmplib cannot write).
func messageFromTag(t Tag) (m message.Message, ok bool, err error) {
	dts := time.Duration(t.Timestamp) * time.Millisecond
	switch t.Type {
	case TagVideo:
		if t.exVideo() {
			return exVideoMessage(t)
		}
		if len(t.Data) < 5 || t.Data[0]&exHeaderBit != 0 {
			return nil, false, fmt.Errorf("%w: video tag of %d bytes", errFLV, len(t.Data))
		}
		v := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: playStreamID, DTS: dts,
			IsKeyFrame: t.Data[0]>>4 == 1, Codec: t.Data[0] & 0x0f, Type: message.VideoType(t.Data[1]),
			PTSDelta: time.Duration(int32(uint32(t.Data[2])<<24|uint32(t.Data[3])<<16|uint32(t.Data[4])<<8)>>8) * time.Millisecond}
		if v.Codec != message.CodecH264 && v.Codec != message.CodecH265 {
			return nil, false, nil
		}
		body := t.Data[5:]
		switch v.Type {
		case message.VideoTypeConfig:
			if v.Codec == message.CodecH264 {
				v.AVCConfig = &mp4.AVCDecoderConfiguration{}
				v.AVCConfig.SetType(mp4.BoxTypeAvcC())
				_, err = mp4.Unmarshal(bytes.NewReader(body), uint64(len(body)), v.AVCConfig, mp4.Context{})
			} else {
				v.HEVCConfig = &mp4.HvcC{}
				_, err = mp4.Unmarshal(bytes.NewReader(body), uint64(len(body)), v.HEVCConfig, mp4.Context{})
			}
			if err != nil {
				return nil, false, fmt.Errorf("%w: video config: %w", errFLV, err)
			}
		case message.VideoTypeAU:
			v.AU = body
		default:
			return nil, false, nil
		}
		return v, true, nil
	case TagAudio:
		if t.exAudio() {
			return exAudioMessage(t)
		}
		if len(t.Data) < 2 || t.Data[0]>>4 == soundFormatExHeader {
			return nil, false, fmt.Errorf("%w: audio tag of %d bytes", errFLV, len(t.Data))
		}
		a := &message.Audio{ChunkStreamID: message.AudioChunkStreamID, MessageStreamID: playStreamID, DTS: dts,
			Codec: t.Data[0] >> 4, Rate: message.AudioRate(t.Data[0] >> 2 & 3), Depth: message.AudioDepth(t.Data[0] >> 1 & 1),
			IsStereo: t.Data[0]&1 == 1, AU: t.Data[1:]}
		switch a.Codec {
		case message.CodecMPEG4Audio:
			a.AACType, a.AU = message.AudioAACType(t.Data[1]), t.Data[2:]
			if a.AACType == message.AudioAACTypeConfig {
				a.AACConfig, a.AU = &mpeg4audio.AudioSpecificConfig{}, nil
				if err := a.AACConfig.Unmarshal(t.Data[2:]); err != nil {
					return nil, false, fmt.Errorf("%w: AAC config: %w", errFLV, err)
				}
			}
		case message.CodecMPEG1Audio, message.CodecLPCM, message.CodecPCMA, message.CodecPCMU:
		default:
			return nil, false, nil
		}
		return a, true, nil
	case TagScript:
		d, err := amf0.Unmarshal(t.Data)
		if err != nil {
			return nil, false, fmt.Errorf("%w: metadata: %w", errFLV, err)
		}
		return &message.DataAMF0{ChunkStreamID: 4, MessageStreamID: playStreamID, Payload: d}, true, nil
	}
	return nil, false, nil
}
