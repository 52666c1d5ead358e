package rooms

import (
	"sync"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"google.golang.org/protobuf/proto"
)

// Outgoing is a ServerMessage on its way to streams. A room event is one
// Outgoing queued to every member, so its wire form is encoded once, by
// the first writer that asks, and the same bytes go to every member's
// connection (bench/rooms: encoding per member was a share of the fan-out's
// CPU). Msg must not change once the Outgoing is queued.
type Outgoing struct {
	Msg *clientv1.ServerMessage

	once sync.Once
	wire []byte
	err  error
}

func outgoing(msg *clientv1.ServerMessage) *Outgoing { return &Outgoing{Msg: msg} }

// Wire is Msg as binary protobuf, encoded on the first call. The bytes are
// shared: callers must not modify them.
func (o *Outgoing) Wire() ([]byte, error) {
	o.once.Do(func() { o.wire, o.err = proto.Marshal(o.Msg) })
	return o.wire, o.err
}
