package live_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/croupier/croupier/internal/live"
)

// hevcAccessUnits reads testdata/hevc-64x64-8f.hevc (8 frames of
// ffmpeg's testsrc, made once by Debian's ffmpeg with libx265:
// -f lavfi -i testsrc=size=64x64:rate=10 -frames:v 8 -c:v libx265
// -x265-params keyint=4:min-keyint=4:bframes=0:scenecut=0 -f hevc) and
// returns its parameter sets and its access units (keyframes at 0 and 4).
func hevcAccessUnits(t *testing.T) (vps, sps, pps []byte, aus [][][]byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/hevc-64x64-8f.hevc")
	if err != nil {
		t.Fatal(err)
	}
	var nalus h264.AnnexB // the same start codes as H.265
	if err := nalus.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	var pending [][]byte
	for _, n := range nalus {
		switch typ := n[0] >> 1 & 0x3f; {
		case typ == 32 && vps == nil:
			vps = n
		case typ == 33 && sps == nil:
			sps = n
		case typ == 34 && pps == nil:
			pps = n
		}
		pending = append(pending, n)
		if n[0]>>1&0x3f < 32 { // a slice ends the access unit (one slice a frame here)
			aus, pending = append(aus, pending), nil
		}
	}
	if vps == nil || sps == nil || pps == nil || len(aus) != 8 {
		t.Fatalf("testdata: %d access units, parameter sets %v/%v/%v", len(aus), vps != nil, sps != nil, pps != nil)
	}
	return vps, sps, pps, aus
}

// flvReader is an HTTP-FLV viewer reading tags with our FLV reader.
type flvReader struct {
	t    *testing.T
	body interface{ Read([]byte) (int, error) }
}

func openFLV(t *testing.T, u string) *flvReader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := live.ReadFLVHeader(resp.Body); err != nil {
		t.Fatal(err)
	}
	return &flvReader{t: t, body: resp.Body}
}

func (r *flvReader) next() live.Tag {
	r.t.Helper()
	tg, err := live.ReadFLVTag(r.body)
	if err != nil {
		r.t.Fatal(err)
	}
	return tg
}

// wantHeaders: onMetaData with videocodecid 'hvc1' as a number (what
// Enhanced RTMP publishers send), then the Enhanced FLV SequenceStart
// (0x90: IsExHeader, key frame, packet type 0; FourCC hvc1) with the hvcC record
// holding the publisher's parameter sets.
func (r *flvReader) wantHeaders(vps, sps, pps []byte) {
	r.t.Helper()
	meta := r.next()
	if meta.Type != live.TagScript {
		r.t.Fatalf("first tag: type %d, want onMetaData", meta.Type)
	}
	d, err := amf0.Unmarshal(meta.Data)
	if err != nil || len(d) < 2 || d[0] != "onMetaData" {
		r.t.Fatalf("metadata %v: %v", d, err)
	}
	obj, _ := d[1].(amf0.Object)
	if id, _ := obj.Get("videocodecid"); id != float64(message.FourCCHEVC) {
		r.t.Fatalf("videocodecid %v, want %v ('hvc1')", id, float64(message.FourCCHEVC))
	}
	seq := r.next()
	if seq.Type != live.TagVideo || len(seq.Data) < 5 || seq.Data[0] != 0x80|1<<4 || string(seq.Data[1:5]) != "hvc1" {
		r.t.Fatalf("second tag: %d % x, want the hvc1 SequenceStart", seq.Type, seq.Data[:min(8, len(seq.Data))])
	}
	for _, ps := range [][]byte{vps, sps, pps} {
		if !bytes.Contains(seq.Data[5:], ps) {
			r.t.Fatal("the SequenceStart's hvcC lacks a parameter set of the publisher")
		}
	}
}

// wantFrame: frame i (DTS i×100 ms) as Enhanced FLV: CodedFrames with a
// 40 ms composition time, or CodedFramesX; keyframes marked as such.
func (r *flvReader) wantFrame(i int, au [][]byte, codedFrames bool) {
	r.t.Helper()
	tg := r.next()
	avcc, _ := h264.AVCC(au).Marshal()
	ft, pt := byte(2), byte(3)
	var payload []byte
	if i%4 == 0 {
		ft = 1
	}
	if codedFrames {
		pt = 1
	}
	switch {
	case tg.Type != live.TagVideo || len(tg.Data) < 8:
		r.t.Fatalf("frame %d: tag type %d of %d bytes", i, tg.Type, len(tg.Data))
	case tg.Timestamp != uint32(i*100):
		r.t.Fatalf("frame %d: timestamp %d, want %d", i, tg.Timestamp, i*100)
	case tg.Data[0] != 0x80|ft<<4|pt || string(tg.Data[1:5]) != "hvc1" || tg.Keyframe() != (ft == 1):
		r.t.Fatalf("frame %d: header % x, want frame type %d packet type %d hvc1", i, tg.Data[:5], ft, pt)
	case codedFrames:
		if cts := binary.BigEndian.Uint32(append([]byte{0}, tg.Data[5:8]...)); cts != 40 {
			r.t.Fatalf("frame %d: composition time %d, want 40", i, cts)
		}
		payload = tg.Data[8:]
	default:
		payload = tg.Data[5:]
	}
	if !bytes.Equal(payload, avcc) {
		r.t.Fatalf("frame %d: payload differs from the published access unit", i)
	}
}

// TestEnhancedRTMPHEVC: a Go publisher (gortmplib, which publishes H.265
// the Enhanced RTMP way) sends real HEVC; HTTP-FLV viewers get Enhanced
// FLV tags: from the start, joining mid-stream (SequenceStart + the GOP
// from the keyframe), through a relay on another node; an RTMP player
// gets the ex messages back.
func TestEnhancedRTMPHEVC(t *testing.T) {
	w := newWorld(t)
	a := w.newNode("a", 4)
	b := w.newNode("b", 4)
	vps, sps, pps, aus := hevcAccessUnits(t)

	u, _ := url.Parse("rtmp://" + a.RTMPAddr() + "/" + w.room + "/" + w.key)
	pub := &gortmplib.Client{URL: u, Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	track := &gortmplib.Track{Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}}
	pw := &gortmplib.Writer{Conn: pub, Tracks: []*gortmplib.Track{track}}
	if err := pw.Initialize(); err != nil {
		t.Fatal(err)
	}
	a.waitLive(t, w.room+"/main")
	send := func(i int, codedFrames bool) {
		t.Helper()
		dts := time.Duration(i) * 100 * time.Millisecond
		pts := dts
		if codedFrames {
			pts += 40 * time.Millisecond
		}
		if err := pw.WriteH265(track, pts, dts, aus[i]); err != nil {
			t.Fatal(err)
		}
	}

	first := openFLV(t, a.playURL(w.room, w.member))
	for i := 0; i < 6; i++ {
		send(i, true)
	}
	first.wantHeaders(vps, sps, pps)
	for i := 0; i < 6; i++ {
		first.wantFrame(i, aus[i], true)
	}
	// Frame 5 reached a viewer, so the GOP cache holds frames 4 and 5.
	late := openFLV(t, a.playURL(w.room, w.member))
	relayed := openFLV(t, b.playURL(w.room, w.member))
	player := playRTMP(t, a.RTMPAddr(), w.room, w.member)
	for _, v := range []*flvReader{late, relayed} {
		v.wantHeaders(vps, sps, pps)
		v.wantFrame(4, aus[4], true)
		v.wantFrame(5, aus[5], true)
	}
	player.wantHeaders(t)
	for i := 6; i < 8; i++ {
		send(i, false)
	}
	for _, v := range []*flvReader{first, late, relayed} {
		for i := 6; i < 8; i++ {
			v.wantFrame(i, aus[i], false)
		}
	}
	player.wantFrames(t, aus)
}

// rtmpPlayer is gortmplib's client playing a stream.
type rtmpPlayer struct{ c *gortmplib.Client }

func playRTMP(t *testing.T, addr, room, token string) *rtmpPlayer {
	t.Helper()
	u, _ := url.Parse("rtmp://" + addr + "/" + room + "/main?token=" + token)
	c := &gortmplib.Client{URL: u}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_ = c.NetConn().SetReadDeadline(time.Now().Add(30 * time.Second))
	return &rtmpPlayer{c: c}
}

// video returns the next video message, skipping the others.
func (p *rtmpPlayer) video(t *testing.T) message.Message {
	t.Helper()
	for {
		m, err := p.c.Read()
		if err != nil {
			t.Fatal(err)
		}
		switch m.(type) {
		case *message.VideoExSequenceStart, *message.VideoExCodedFrames, *message.VideoExFramesX, *message.Video:
			return m
		}
	}
}

func (p *rtmpPlayer) wantHeaders(t *testing.T) {
	t.Helper()
	if s, ok := p.video(t).(*message.VideoExSequenceStart); !ok || s.FourCC != message.FourCCHEVC || s.HEVCConfig == nil {
		t.Fatalf("RTMP play: first video message %+v, want the hvc1 VideoExSequenceStart", s)
	}
}

// wantFrames: frames 4 and 5 (the GOP cache, CodedFrames with 40 ms
// composition time), then 6 and 7 (CodedFramesX).
func (p *rtmpPlayer) wantFrames(t *testing.T, aus [][][]byte) {
	t.Helper()
	for i := 4; i < 8; i++ {
		avcc, _ := h264.AVCC(aus[i]).Marshal()
		dts := time.Duration(i) * 100 * time.Millisecond
		switch m := p.video(t).(type) {
		case *message.VideoExCodedFrames:
			if i >= 6 || m.FourCC != message.FourCCHEVC || m.DTS != dts || m.PTSDelta != 40*time.Millisecond || !bytes.Equal(m.Payload, avcc) {
				t.Fatalf("RTMP play frame %d: CodedFrames %v dts %v cts %v", i, m.FourCC, m.DTS, m.PTSDelta)
			}
		case *message.VideoExFramesX:
			if i < 6 || m.FourCC != message.FourCCHEVC || m.DTS != dts || !bytes.Equal(m.Payload, avcc) {
				t.Fatalf("RTMP play frame %d: FramesX %v dts %v", i, m.FourCC, m.DTS)
			}
		default:
			t.Fatalf("RTMP play frame %d: %T", i, m)
		}
	}
}
