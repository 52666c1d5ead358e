package gateway_test

import (
	"context"
	"log"

	"github.com/croupier/croupier/api/netsvr"
	"github.com/croupier/croupier/sdk/gateway"
)

// A tiny chat: every client joins the "lobby" topic when it connects, and
// whatever a client sends to workerId 1 ("001hello") is published to the
// lobby. Try it with any WebSocket client against ws://127.0.0.1:6060/netsvr.
func Example_chat() {
	var c *gateway.Client
	c, err := gateway.New(gateway.Config{
		Addr:     "127.0.0.1:6061",
		WorkerID: 1,
		ServerID: 1,
		// Needs the gateway's conn_open_worker_id set to 1.
		OnConnOpen: func(m *netsvr.ConnOpen) {
			_ = c.TopicSubscribe(m.UniqId, []string{"lobby"}, []byte("welcome, "+m.UniqId))
		},
		OnTransfer: func(m *netsvr.Transfer) {
			_ = c.TopicPublish([]string{"lobby"}, append([]byte(m.UniqId+": "), m.Data...))
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
}
