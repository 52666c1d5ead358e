package gateway

import (
	"bufio"
	"encoding/binary"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/croupier/croupier/api/netsvr"
)

// maxBatch bounds how many consecutive fan-out frames are merged.
const maxBatch = 64

// fanOutBatch handles a Broadcast or TopicPublish together with the frames
// of the same kind (same topics) that are already buffered behind it: their
// WebSocket frames are concatenated and written with one Write per
// recipient instead of one per message. Under load a business sends
// fan-outs back to back, and the per-recipient write is the gateway's main
// cost. Order is kept: merging stops at the first other frame.
func (g *Gateway) fanOutBatch(r *bufio.Reader, cmd netsvr.Cmd, body []byte) {
	var topics []string
	data, ok := g.fanOutData(cmd, body, &topics)
	if !ok {
		return
	}
	batch := g.frame(data)
	n, size := 1, len(data)
	for n < maxBatch {
		next, ok := peekFrame(r, g.cfg.ReceivePackLimit)
		if !ok || next != cmd {
			break
		}
		f, err := readFrame(r, g.cfg.ReceivePackLimit) // fully buffered: does not block
		if err != nil {
			break
		}
		var more []string
		d, ok := g.fanOutData(cmd, f.body, &more)
		if !ok {
			continue
		}
		if cmd == netsvr.Cmd_TopicPublish && !slices.Equal(more, topics) {
			g.fanOutFrame(cmd, topics, batch, n, size)
			topics, batch, n, size = more, nil, 0, 0
		}
		batch = append(batch, g.frame(d)...)
		n, size = n+1, size+len(d)
	}
	g.fanOutFrame(cmd, topics, batch, n, size)
}

// fanOutData decodes a Broadcast or TopicPublish; ok is false for a body
// that does not decode or carries no data.
func (g *Gateway) fanOutData(cmd netsvr.Cmd, body []byte, topics *[]string) ([]byte, bool) {
	if cmd == netsvr.Cmd_Broadcast {
		m := &netsvr.Broadcast{}
		if err := proto.Unmarshal(body, m); err != nil {
			g.log.Warn("gateway: undecodable business message skipped", "cmd", cmd.String(), "err", err)
			return nil, false
		}
		return m.Data, len(m.Data) > 0
	}
	m := &netsvr.TopicPublish{}
	if err := proto.Unmarshal(body, m); err != nil {
		g.log.Warn("gateway: undecodable business message skipped", "cmd", cmd.String(), "err", err)
		return nil, false
	}
	*topics = m.Topics
	return m.Data, len(m.Data) > 0
}

// fanOutFrame writes the n pre-encoded messages in frames (size payload
// bytes) to the recipients.
func (g *Gateway) fanOutFrame(cmd netsvr.Cmd, topics []string, frames []byte, n, size int) {
	if n == 0 {
		return
	}
	var cs []*client
	if cmd == netsvr.Cmd_Broadcast {
		cs = g.hub.all()
	} else {
		cs = g.hub.members(topics)
	}
	for _, c := range cs {
		c.write(frames)
	}
	g.metrics.meters[metricWriteCount].add(int64(n * len(cs)))
	g.metrics.meters[metricWriteBytes].add(int64(size * len(cs)))
}

// peekFrame reports the cmd of the next frame when it is wholly buffered.
func peekFrame(r *bufio.Reader, limit int) (netsvr.Cmd, bool) {
	if r.Buffered() < 8 {
		return 0, false
	}
	h, _ := r.Peek(8)
	n := binary.BigEndian.Uint32(h)
	if n < 4 || uint64(n) > uint64(limit) || r.Buffered() < 4+int(n) {
		return 0, false
	}
	return netsvr.Cmd(binary.BigEndian.Uint32(h[4:])), true
}
