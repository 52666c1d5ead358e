package rooms

import (
	"context"
	"errors"
	"sync"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// seqBlock is how many room event sequence numbers are reserved in the
// database at a time: one write per seqBlock events, and a restart skips
// at most that many.
const seqBlock = 1000

// loadTimeout bounds loading a room into the hub; the load is shared by
// every caller waiting for it, so it does not use any one caller's context.
const loadTimeout = 10 * time.Second

// hub holds the live rooms: those with a stream open or an operation in
// flight. A room is loaded by its first user and dropped by its last.
type hub struct {
	svc *Service

	mu    sync.Mutex
	rooms map[string]*liveRoom
}

// liveRoom is one room's in-memory state. Fields below mu are guarded by
// it; refs by hub.mu; err is written once before ready closes.
type liveRoom struct {
	id    string
	refs  int
	ready chan struct{}
	err   error

	mu     sync.Mutex
	seq    int64
	seqEnd int64
	state  store.PlaybackState
	movie  *clientv1.Movie
	// chat is the retained chat, oldest first, at most chatKeep.
	chat []*Outgoing
	// subs are the open streams, one per user.
	subs map[string]*Stream
	// gone: the room was deleted; no new streams or events.
	gone bool
	// reported is the stream count last given to the Bus (Bus.Online).
	reported int
}

func newHub(s *Service) *hub { return &hub{svc: s, rooms: map[string]*liveRoom{}} }

// acquire returns the live room, loading it if needed; release it when
// done.
func (h *hub) acquire(ctx context.Context, id string) (*liveRoom, error) {
	h.mu.Lock()
	r := h.rooms[id]
	if r != nil {
		r.refs++
		h.mu.Unlock()
	} else {
		r = &liveRoom{id: id, refs: 1, ready: make(chan struct{}), subs: map[string]*Stream{}}
		h.rooms[id] = r
		h.svc.m.liveRooms.Inc()
		h.mu.Unlock()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		r.err = h.load(lctx, r)
		cancel()
		if r.err != nil {
			h.mu.Lock()
			if h.rooms[id] == r {
				delete(h.rooms, id) // the next caller tries again
				h.svc.m.liveRooms.Dec()
			}
			h.mu.Unlock()
		}
		close(r.ready)
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		h.release(r)
		return nil, apierr.FromContext(ctx.Err())
	}
	if r.err != nil {
		h.release(r)
		return nil, r.err
	}
	return r, nil
}

func (h *hub) release(r *liveRoom) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.refs--
	if r.refs == 0 && h.rooms[r.id] == r {
		delete(h.rooms, r.id)
		h.svc.m.liveRooms.Dec()
		h.svc.playlists.forget(r.id)
	}
}

// isLive says whether the room is loaded on this node.
func (h *hub) isLive(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[id] != nil
}

// ifLive runs fn with the room's lock held if the room is live; events
// of rooms nobody watches need not be delivered.
func (h *hub) ifLive(id string, fn func(r *liveRoom)) {
	h.mu.Lock()
	r := h.rooms[id]
	if r == nil {
		h.mu.Unlock()
		return
	}
	r.refs++
	h.mu.Unlock()
	defer h.release(r)
	<-r.ready
	if r.err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.gone {
		fn(r)
	}
	h.noteOnline(r)
}

// noteOnline tells the Bus the room's stream count on this node when it
// changed since last told (for online_count across the cluster). r.mu
// held.
func (h *hub) noteOnline(r *liveRoom) {
	if bus := h.svc.bus; bus != nil && len(r.subs) != r.reported {
		r.reported = len(r.subs)
		bus.Online(r.id, r.reported)
	}
}

// online reports whether the user has a stream open in the room.
func (h *hub) online(roomID, userID string) bool {
	on := false
	h.ifLive(roomID, func(r *liveRoom) { _, on = r.subs[userID] })
	return on
}

// onlineCount is the number of streams open in the room: on this node,
// plus on the cluster's other nodes with a Bus.
func (h *hub) onlineCount(roomID string) int {
	n := 0
	h.ifLive(roomID, func(r *liveRoom) { n = len(r.subs) })
	return n + h.elsewhere(roomID)
}

// elsewhere is the number of streams open in the room on the cluster's
// other nodes (0 without a Bus).
func (h *hub) elsewhere(roomID string) int {
	if h.svc.bus == nil {
		return 0
	}
	return h.svc.bus.OnlineElsewhere(roomID)
}

func (h *hub) load(ctx context.Context, r *liveRoom) error {
	st := h.svc.st
	var head int64
	if bus := h.svc.bus; bus != nil {
		// The log's head before the state: every event after it is
		// delivered, every one before it is in the state read next.
		var err error
		if head, err = bus.Head(ctx, r.id); err != nil {
			return errNoBus(err)
		}
	}
	room, err := st.Room(ctx, r.id)
	if errors.Is(err, store.ErrNotFound) {
		return roomNotFound(r.id)
	}
	if err != nil {
		return toStatus(ctx, h.svc.log, err)
	}
	if h.svc.bus != nil {
		r.seq = head
	} else {
		end, err := st.ReserveSeq(ctx, r.id, seqBlock)
		if err != nil {
			return toStatus(ctx, h.svc.log, err)
		}
		r.seq, r.seqEnd = end-seqBlock, end
	}
	r.state = room.State
	if room.State.MovieID != "" {
		m, err := st.Movie(ctx, r.id, room.State.MovieID)
		switch {
		case err == nil:
			r.movie = movieProto(m)
		case !errors.Is(err, store.ErrNotFound):
			return toStatus(ctx, h.svc.log, err)
		}
	}
	chat, err := st.ChatBefore(ctx, r.id, 0, chatKeep)
	if err != nil {
		return toStatus(ctx, h.svc.log, err)
	}
	r.chat = make([]*Outgoing, 0, len(chat))
	for _, c := range chat {
		r.chat = append(r.chat, outgoing(chatProto(c)))
	}
	return nil
}

// closeAll ends every stream, for shutdown.
func (h *hub) closeAll() {
	h.mu.Lock()
	ids := make([]string, 0, len(h.rooms))
	for id := range h.rooms {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	bye := errorMessage(apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the server is shutting down; reconnect"), "")
	for _, id := range ids {
		h.ifLive(id, func(r *liveRoom) {
			for uid, s := range r.subs {
				delete(r.subs, uid)
				s.kill(bye)
			}
		})
	}
}

// closeDeleted ends every stream of a deleted room with msg (its deleted
// RoomUpdate) then ROOM_DELETED, and marks the room gone: no new streams
// or events. r.mu held.
func (h *hub) closeDeleted(r *liveRoom, msg *Outgoing) {
	bye := errorMessage(apierr.New(codes.NotFound, apierr.CodeRoomDeleted, "room "+r.id+" was deleted"), "")
	for uid, st := range r.subs {
		st.enqueue(msg)
		delete(r.subs, uid)
		st.kill(bye)
	}
	r.gone = true
}

// nextSeq hands out the room's next event sequence number, reserving a
// new block in the database when the current one is used up. r.mu held.
func (r *liveRoom) nextSeq(ctx context.Context, st *store.Rooms) (int64, error) {
	if r.seq >= r.seqEnd {
		end, err := st.ReserveSeq(context.WithoutCancel(ctx), r.id, seqBlock)
		if err != nil {
			return 0, err
		}
		r.seq, r.seqEnd = max(r.seq, end-seqBlock), end
	}
	r.seq++
	return r.seq, nil
}

// publish stamps msg as the room's next event and queues it to every
// stream of the room (with a Bus: appends it to the cluster's log, which
// delivers it). r.mu held.
func (h *hub) publish(ctx context.Context, r *liveRoom, msg *clientv1.ServerMessage) error {
	msg.Timestamp = h.svc.nowMs()
	if msg.MessageId == "" {
		var err error
		if msg.MessageId, err = newID(); err != nil {
			return toStatus(ctx, h.svc.log, err)
		}
	}
	stampSaid(msg)
	if bus := h.svc.bus; bus != nil {
		// Delivered by Service.Deliver, in the log's order, on every node.
		seq, err := bus.Publish(ctx, r.id, msg)
		if err != nil {
			return errNoBus(err)
		}
		msg.Seq = seq
		h.svc.m.published(msg)
		return nil
	}
	seq, err := r.nextSeq(ctx, h.svc.st)
	if err != nil {
		return toStatus(ctx, h.svc.log, err)
	}
	msg.Seq = seq
	h.svc.m.published(msg)
	h.fanout(r, msg)
	return nil
}

// stampSaid gives a chat or danmaku broadcast the message's id and time
// (before it goes to the log or the streams), so the live copy carries
// what the stored one replays (chatProto): message_id and sent_at.
func stampSaid(msg *clientv1.ServerMessage) {
	switch p := msg.Payload.(type) {
	case *clientv1.ServerMessage_Chat:
		p.Chat.MessageId, p.Chat.SentAt = msg.MessageId, msg.Timestamp
	case *clientv1.ServerMessage_Danmaku:
		p.Danmaku.MessageId, p.Danmaku.SentAt = msg.MessageId, msg.Timestamp
	}
}

// publishLive publishes msg in the room if it is live, running update
// first with the lock held. With a Bus the room's members may all be on
// other nodes, so the room is loaded here if need be and msg always goes
// to its log (live STARTED/STOPPED from this node's ingest, a ban or a
// playlist change made through this node).
func (h *hub) publishLive(ctx context.Context, roomID string, msg *clientv1.ServerMessage, update func(r *liveRoom)) {
	if h.svc.bus != nil {
		r, err := h.acquire(ctx, roomID)
		if err != nil {
			h.svc.log.Warn("room event not published", "room", roomID, "err", err)
			return
		}
		defer h.release(r)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.gone {
			return
		}
		if update != nil {
			update(r)
		}
		if err := h.publish(ctx, r, msg); err != nil {
			h.svc.log.Warn("room event not published", "room", roomID, "err", err)
		}
		h.noteOnline(r)
		return
	}
	h.ifLive(roomID, func(r *liveRoom) {
		if update != nil {
			update(r)
		}
		if err := h.publish(ctx, r, msg); err != nil {
			h.svc.log.Warn("room event not delivered", "room", roomID, "err", err)
		}
	})
}

// kick ends the user's stream in the room with final as its last message.
// r.mu held.
func (r *liveRoom) kick(userID string, final *clientv1.ServerMessage) {
	if s := r.subs[userID]; s != nil {
		delete(r.subs, userID)
		s.kill(final)
	}
}

func (r *liveRoom) stateProto() *clientv1.RoomState { return stateProto(r.state, r.movie) }
