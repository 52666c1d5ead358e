package rooms

import (
	"context"
	"math"
	"sync"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// Stream is one member's live MessageStream in a room, independent of the
// transport. The transport owns two goroutines: a reader that passes each
// ClientMessage to Handle, and the single writer that sends what Out
// yields until Done closes, then sends Final (if any) and returns. Close
// it when either ends.
type Stream struct {
	svc    *Service
	room   *liveRoom
	caller Caller
	// member is the membership as of the last change (room.mu).
	member store.RoomMember
	// openSeq is the seq of the stream's ONLINE event: a later ONLINE of
	// the same user from another node replaces this stream.
	openSeq int64

	out   chan *Outgoing
	done  chan struct{}
	once  sync.Once
	final *Outgoing // written before done closes
	// flush: send what is queued before final (all ends but a slow
	// consumer's, which is cut off at once). Written before done closes.
	flush bool
	close sync.Once
}

// OpenStream joins the caller's stream to the room named by hello: it
// queues the chat messages retained after hello.after_seq, the room's
// state and a StreamReady, then every room event. A stream the same user
// had open in the room is ended (STREAM_REPLACED).
func (s *Service) OpenStream(ctx context.Context, c Caller, hello *clientv1.StreamHello) (*Stream, error) {
	if hello == nil {
		return nil, invalid("the first message of a MessageStream must be a hello naming the room")
	}
	if err := checkRoomID(hello.GetRoomId()); err != nil {
		return nil, err
	}
	if hello.GetAfterSeq() < 0 {
		return nil, invalid("after_seq must be >= 0")
	}
	m, err := s.activeMember(ctx, c, hello.GetRoomId())
	if err != nil {
		return nil, err
	}
	r, err := s.hub.acquire(ctx, hello.GetRoomId())
	if err != nil {
		return nil, err
	}
	st := &Stream{svc: s, room: r, caller: c, member: m,
		out: make(chan *Outgoing, s.queue), done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		s.hub.release(r)
		return nil, apierr.New(codes.NotFound, apierr.CodeRoomDeleted, "room "+r.id+" was deleted")
	}
	old := r.subs[c.UserID]
	if old != nil {
		delete(r.subs, c.UserID)
		old.kill(errorMessage(apierr.New(codes.Aborted, apierr.CodeStreamReplaced,
			"another stream of the same user opened in this room; this one is closed"), ""))
	}
	replayed, truncated := 0, false
	if n := len(r.chat); n > 0 && hello.GetAfterSeq() > 0 && n == chatKeep && r.chat[0].Msg.Seq > hello.GetAfterSeq()+1 {
		truncated = true
	}
	for _, msg := range r.chat {
		if msg.Msg.Seq > hello.GetAfterSeq() {
			st.out <- msg // fits: the queue holds more than chatKeep
			replayed++
		}
	}
	st.out <- outgoing(&clientv1.ServerMessage{Timestamp: s.nowMs(), Payload: &clientv1.ServerMessage_RoomState{
		RoomState: &clientv1.RoomStateUpdate{RoomId: r.id, State: r.stateProto()}}})
	mp := memberProto(m, true)
	st.out <- outgoing(&clientv1.ServerMessage{Timestamp: s.nowMs(), Payload: &clientv1.ServerMessage_Ready{Ready: &clientv1.StreamReady{
		RoomId: r.id, HeadSeq: r.seq, Member: mp, Replayed: int32(replayed), Truncated: truncated}}})
	for _, ev := range s.liveStreams(r.id) {
		select {
		case st.out <- outgoing(&clientv1.ServerMessage{Timestamp: s.nowMs(), Payload: &clientv1.ServerMessage_Live{Live: ev}}):
		default: // a full queue (a long chat replay) goes without; the next STARTED tells
		}
	}
	if old == nil {
		on := memberUpdate(clientv1.MemberUpdate_KIND_ONLINE, mp)
		_ = s.hub.publish(ctx, r, on)
		st.openSeq = on.Seq
	}
	r.subs[c.UserID] = st
	s.hub.noteOnline(r)
	s.m.streams.Inc()
	return st, nil
}

// Out yields the messages to send, in order.
func (st *Stream) Out() <-chan *Outgoing { return st.out }

// Done closes when the stream must end: replaced, kicked, cut off as too
// slow, or the room deleted.
func (st *Stream) Done() <-chan struct{} { return st.done }

// Final is the message to send last once Done has closed (nil: none),
// and whether the messages still queued in Out go first.
func (st *Stream) Final() (final *Outgoing, flush bool) {
	<-st.done
	return st.final, st.flush
}

// Close unregisters the stream; the transport calls it once it stops
// reading and writing.
func (st *Stream) Close() {
	st.close.Do(func() {
		r := st.room
		r.mu.Lock()
		if r.subs[st.caller.UserID] == st {
			delete(r.subs, st.caller.UserID)
			if !r.gone {
				_ = st.svc.hub.publish(context.Background(), r, memberUpdate(clientv1.MemberUpdate_KIND_OFFLINE, memberProto(st.member, false)))
			}
		}
		st.svc.hub.noteOnline(r)
		r.mu.Unlock()
		st.kill(nil)
		st.svc.hub.release(r)
		st.svc.m.streams.Dec()
	})
}

// ended says whether the stream has been told to end.
func (st *Stream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}

func (st *Stream) kill(final *clientv1.ServerMessage) { st.end(final, true) }

func (st *Stream) end(final *clientv1.ServerMessage, flush bool) {
	st.once.Do(func() {
		if final != nil {
			st.final = outgoing(final)
		}
		st.flush = flush
		close(st.done)
	})
}

// enqueue queues msg without blocking; a full queue cuts the stream off
// (SLOW_CONSUMER) and returns false.
func (st *Stream) enqueue(msg *Outgoing) bool {
	select {
	case <-st.done:
		return false
	default:
	}
	select {
	case st.out <- msg:
		return true
	default:
		st.svc.m.slow.Inc()
		st.end(errorMessage(apierr.New(codes.ResourceExhausted, apierr.CodeSlowConsumer,
			"the stream fell too far behind the room; reconnect with after_seq to catch up"), ""), false)
		return false
	}
}

// Handle processes one ClientMessage. Replies (pong, errors) are queued
// like events; a refusal is an ErrorMessage, never the end of the stream.
func (st *Stream) Handle(ctx context.Context, msg *clientv1.ClientMessage) {
	if st.ended() {
		return // the transport is about to stop reading: too late to act
	}
	if err := st.handle(ctx, msg); err != nil {
		st.enqueue(outgoing(errorMessage(err, truncate(msg.GetMessageId(), maxMessageID))))
	}
}

func (st *Stream) handle(ctx context.Context, msg *clientv1.ClientMessage) error {
	s := st.svc
	if len(msg.GetMessageId()) > maxMessageID {
		return tooLong("message_id", maxMessageID, "bytes")
	}
	switch p := msg.GetPayload().(type) {
	case *clientv1.ClientMessage_Ping:
		recv := s.Now()
		st.enqueue(outgoing(&clientv1.ServerMessage{MessageId: msg.GetMessageId(), Timestamp: s.nowMs(), Payload: &clientv1.ServerMessage_Pong{
			Pong: &clientv1.PongMessage{ClientTime: p.Ping.GetClientTime(), ServerReceiveTime: recv, ServerSendTime: s.Now()}}}))
		return nil
	case *clientv1.ClientMessage_Chat:
		content, err := checkText("chat content", p.Chat.GetContent(), maxChatBytes)
		if err != nil {
			return err
		}
		return st.say(ctx, clientv1.Permission_PERMISSION_CHAT, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Chat{
			Chat: &clientv1.ChatBroadcast{User: st.caller.user(), Content: content}}})
	case *clientv1.ClientMessage_Danmaku:
		content, err := checkText("danmaku content", p.Danmaku.GetContent(), maxDanmakuBytes)
		if err != nil {
			return err
		}
		if len(p.Danmaku.GetColor()) > maxColorLen {
			return tooLong("danmaku color", maxColorLen, "bytes")
		}
		if pos := p.Danmaku.GetPosition(); !finite(pos) || pos < 0 {
			return invalid("danmaku position must be a finite number >= 0")
		}
		return st.say(ctx, clientv1.Permission_PERMISSION_DANMAKU, &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Danmaku{
			Danmaku: &clientv1.DanmakuBroadcast{User: st.caller.user(), Content: content, Color: p.Danmaku.GetColor(), Position: p.Danmaku.GetPosition()}}})
	case *clientv1.ClientMessage_PlayControl:
		pc := p.PlayControl
		if err := s.rateLimit(st.room.id, st.caller.UserID, limitControl); err != nil {
			return err
		}
		_, err := s.changePlayback(ctx, st.room, clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, st.memberNow, pc.GetVersion(), nil, func(now time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Position = positionAt(cur, now)
			if pc.Position != nil {
				if err := checkPosition(pc.GetPosition()); err != nil {
					return cur, err
				}
				next.Position = pc.GetPosition()
			}
			if pc.GetRate() != 0 {
				if err := checkRate(pc.GetRate()); err != nil {
					return cur, err
				}
				next.Rate = pc.GetRate()
			}
			next.Playing = pc.GetPlaying()
			return next, nil
		})
		return err
	case *clientv1.ClientMessage_Seek:
		if err := checkPosition(p.Seek.GetPosition()); err != nil {
			return err
		}
		if err := s.rateLimit(st.room.id, st.caller.UserID, limitControl); err != nil {
			return err
		}
		_, err := s.changePlayback(ctx, st.room, clientv1.Permission_PERMISSION_CONTROL_PLAYBACK, st.memberNow, p.Seek.GetVersion(), nil, func(_ time.Time, cur store.PlaybackState) (store.PlaybackState, error) {
			next := cur
			next.Position = p.Seek.GetPosition()
			return next, nil
		})
		return err
	case *clientv1.ClientMessage_Hello:
		return invalid("hello was already sent; a stream serves one room")
	}
	return invalid("the message has no payload (ping, chat, danmaku, play_control or seek)")
}

// memberNow is the stream's membership as of now; room.mu held.
func (st *Stream) memberNow() store.RoomMember { return st.member }

// say publishes a chat or danmaku message after the permission and rate
// checks (the user's limits in the room, kept across reconnects); chat is
// then stored (the last chatKeep per room are kept).
func (st *Stream) say(ctx context.Context, perm clientv1.Permission, msg *clientv1.ServerMessage) error {
	s, r := st.svc, st.room
	r.mu.Lock()
	if st.ended() {
		// Ended (its session revoked, banned, ...) while this message was
		// on its way: it is not sent.
		r.mu.Unlock()
		return nil
	}
	if effective(st.member)&uint64(perm) == 0 {
		r.mu.Unlock()
		return missing(perm, r.id)
	}
	kind := limitChat
	if perm == clientv1.Permission_PERMISSION_DANMAKU {
		kind = limitDanmaku
	}
	if err := s.rateLimit(r.id, st.caller.UserID, kind); err != nil {
		r.mu.Unlock()
		return err
	}
	err := s.hub.publish(ctx, r, msg)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	c, ok := msg.Payload.(*clientv1.ServerMessage_Chat)
	if !ok {
		return nil
	}
	s.chat.add(ctx, store.ChatMessage{RoomID: r.id, Seq: msg.Seq, MessageID: msg.MessageId, UserID: st.caller.UserID,
		Username: st.caller.Username, Guest: st.caller.Guest, Content: c.Chat.Content, SentAt: time.UnixMilli(msg.Timestamp)})
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func checkPosition(p float64) error {
	if !finite(p) || p < 0 || p > maxPosition {
		return invalid("position %v: must be seconds from 0 to %v", p, maxPosition)
	}
	return nil
}

func checkRate(r float64) error {
	if !finite(r) || r < minRate || r > maxRate {
		return invalid("rate %v: must be from %v to %v", r, minRate, maxRate)
	}
	return nil
}

// Reject queues an ErrorMessage for a message the transport could not
// decode; the stream goes on.
func (st *Stream) Reject(err error) { st.enqueue(outgoing(errorMessage(err, ""))) }
