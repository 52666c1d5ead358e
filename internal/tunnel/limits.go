package tunnel

import "time"

const (
	protocolVersion = 1

	// DefaultMaxFrameBytes is the largest frame either side accepts unless
	// configured otherwise. It matches gRPC's default receive limit so the
	// stream transport needs no server option to honour it.
	DefaultMaxFrameBytes = 4 << 20

	// minFrameBytes is the smallest frame limit either side may set: the
	// handshake and control frames must always fit.
	minFrameBytes = 4 << 10

	// maxBatchFrames bounds the frames in one long-poll batch.
	maxBatchFrames = 1024
	// batchOverheadBytes covers the batch envelope around its frames.
	batchOverheadBytes = 4 << 10

	// maxNameBytes bounds a client name; names end up in logs and maps.
	maxNameBytes = 256
	// maxTypeURLBytes bounds an Any's type URL.
	maxTypeURLBytes = 512
	// maxInFlightLimit caps what a client may announce; the server allocates
	// per-slot state.
	maxInFlightLimit = 1 << 16

	defaultMaxInFlight   = 64
	defaultPingInterval  = 10 * time.Second
	defaultPingTimeout   = 30 * time.Second
	defaultMinBackoff    = 100 * time.Millisecond
	defaultMaxBackoff    = 30 * time.Second
	defaultPollWait      = 20 * time.Second
	maxPollWait          = 60 * time.Second
	longPollOpenTimeout  = 30 * time.Second
	sessionIDBytes       = 16
	maxSessionIDChars    = 64
	maxControlFrameQueue = 64
)

// limits bounds what a decoder accepts.
type limits struct {
	maxFrameBytes  int
	maxBatchFrames int
}

func newLimits(maxFrameBytes int) limits {
	if maxFrameBytes <= 0 {
		maxFrameBytes = DefaultMaxFrameBytes
	}
	maxFrameBytes = max(maxFrameBytes, minFrameBytes)
	return limits{maxFrameBytes: maxFrameBytes, maxBatchFrames: maxBatchFrames}
}

// maxBatchBytes is the largest long-poll body: a batch must fit one frame of
// the largest size, and the batcher never packs more bytes than this.
func (l limits) maxBatchBytes() int {
	return 2*l.maxFrameBytes + batchOverheadBytes
}
