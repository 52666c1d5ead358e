package tunnel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestWriterRunsOnlyWhileQueued: an accepted connection with nothing to
// send has no writer goroutine; each call starts one, which ends once the
// queues are empty. (That pings are answered is checked by the heartbeat
// tests in heartbeat_test.go.)
func TestWriterRunsOnlyWhileQueued(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := newEnv(t, tr, ServerOptions{})
			e.startClient(ClientOptions{Name: "a", Handlers: echoRegistry(t, "a")})
			waitFor(t, 5*time.Second, func() bool { return e.srv.Connected("a") }, "client to connect")
			c := e.srv.lookup("a")
			idle := func() bool {
				c.qmu.Lock()
				defer c.qmu.Unlock()
				return c.accepted && !c.writing && len(c.ctrl)+len(c.reqs) == 0
			}
			for i := range 5 {
				waitFor(t, 5*time.Second, idle, "the writer to end before call %d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := Call[*wrapperspb.StringValue](ctx, e.srv, "a", wrapperspb.String(fmt.Sprint(i)))
				cancel()
				if err != nil || resp.GetValue() != fmt.Sprintf("a:%d", i) {
					t.Fatalf("call %d: %v, %v", i, resp, err)
				}
			}
			waitFor(t, 5*time.Second, idle, "the writer to end after the last call")
			if e.srv.lookup("a") != c {
				t.Fatal("the connection was replaced during the test")
			}
		})
	}
}
