package demogame

import (
	"log/slog"
	"unicode/utf8"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/sdk/gateway"
)

// ChatWorkerID is the workerId of the demo chat: clients send
// `001{"say":"hi"}`.
const ChatWorkerID = 1

// ChatTopic is the topic every client joins when it connects.
const ChatTopic = "lobby"

// maxChatMessage bounds what one client can make the chat send to everyone.
const maxChatMessage = 1024

// NewChat returns the demo chat, a business process of the player gateway
// at addr: every client joins the lobby topic when it connects (the
// gateway must send ConnOpen to ChatWorkerID), and what a client sends to
// ChatWorkerID is published to the lobby as "UNIQID: MESSAGE". Messages
// over 1 KiB or not UTF-8 are dropped. Run the returned client to serve.
func NewChat(addr string, serverID uint32, log *slog.Logger) (*gateway.Client, error) {
	var c *gateway.Client
	c, err := gateway.New(gateway.Config{
		Addr: addr, WorkerID: ChatWorkerID, ServerID: serverID, Logger: log,
		OnConnOpen: func(m *netsvr.ConnOpen) {
			_ = c.TopicSubscribe(m.GetUniqId(), []string{ChatTopic}, []byte("welcome to the lobby, "+m.GetUniqId()))
		},
		OnTransfer: func(m *netsvr.Transfer) {
			if len(m.GetData()) > maxChatMessage || !utf8.Valid(m.GetData()) {
				return
			}
			_ = c.TopicPublish([]string{ChatTopic}, append([]byte(m.GetUniqId()+": "), m.GetData()...))
		},
	})
	return c, err
}
