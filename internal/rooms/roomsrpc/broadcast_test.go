package roomsrpc_test

import (
	"context"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"google.golang.org/protobuf/proto"
)

// TestLiveChatMatchesHistory: a chat message as broadcast live (from a
// stream, and from another node through RemoteChat) is the message
// GetChatHistory returns later — message_id and sent_at included — and a
// live danmaku carries its id and time too.
func TestLiveChatMatchesHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	owner := e.register("")
	room := e.createRoom(owner, &clientv1.CreateRoomRequest{})
	alice := e.register("")
	e.join(alice, room)
	s := e.openStream(alice, room, 0)
	s.next(isReady)

	s.send(chatMsg("hello"))
	live := []*clientv1.ServerMessage{s.next(isChat)}
	if err := e.svc.RemoteChat(context.Background(), room, "", alice.id, "from afar"); err != nil {
		t.Fatal(err)
	}
	live = append(live, s.next(isChat))
	for _, m := range live {
		c := m.GetChat()
		if c.GetMessageId() == "" || c.GetMessageId() != m.GetMessageId() || c.GetSentAt() == 0 || c.GetSentAt() != m.GetTimestamp() {
			t.Fatalf("live chat %v: want message_id = the message's id and sent_at = its timestamp", m)
		}
	}

	s.send(&clientv1.ClientMessage{Payload: &clientv1.ClientMessage_Danmaku{Danmaku: &clientv1.DanmakuMessage{Content: "wow", Position: 1}}})
	dm := s.next(func(m *clientv1.ServerMessage) bool { return m.GetDanmaku() != nil })
	if d := dm.GetDanmaku(); d.GetMessageId() == "" || d.GetMessageId() != dm.GetMessageId() || d.GetSentAt() == 0 || d.GetSentAt() != dm.GetTimestamp() {
		t.Fatalf("live danmaku %v: want message_id = the message's id and sent_at = its timestamp", dm)
	}

	// The chat log (a background writer) stores them: polled, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		hist, err := e.c.GetChatHistory(ctxT(t), as(alice, &clientv1.GetChatHistoryRequest{RoomId: room}))
		if err == nil && len(hist.Msg.GetMessages()) == 2 {
			for i, m := range hist.Msg.GetMessages() {
				if !proto.Equal(m, live[i]) {
					t.Fatalf("chat %d\n live:    %v\n history: %v", i, live[i], m)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: %v %v", hist, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
