package rooms_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv1 "github.com/croupier/croupier/api/synctv/client/v1"
	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/rooms"
	"github.com/croupier/croupier/internal/store/storetest"
)

// scriptedBus is a rooms.Bus whose log head the test sets: it stands for
// the cluster's log in a unit test of what Deliver does with it
// (roomcluster's tests run the real one).
type scriptedBus struct {
	mu      sync.Mutex
	seq     int64 // last seq Publish handed out
	head    int64
	headErr error
	asked   int    // Head calls
	onHead  func() // runs as Head is asked, before it answers
}

func (b *scriptedBus) Publish(context.Context, string, *clientv1.ServerMessage) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return b.seq, nil
}

func (b *scriptedBus) Head(context.Context, string) (int64, error) {
	b.mu.Lock()
	on := b.onHead
	b.onHead = nil
	b.asked++
	b.mu.Unlock()
	if on != nil {
		on()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.head, b.headErr
}

func (b *scriptedBus) headsAsked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked
}

func (b *scriptedBus) set(head int64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.head, b.headErr = head, err
}

func (*scriptedBus) Check() error               { return nil }
func (*scriptedBus) Online(string, int)         {}
func (*scriptedBus) OnlineElsewhere(string) int { return 0 }

// TestPlaylistChangesReadOncePerBurst: the playlist changes Deliver gets
// from the log are filled with one read of the playlist for every change
// already in the log when the read began (the log's head, asked first when
// the log holds more events), not one read each. A change past that head
// is read again; so is every change when the head cannot be asked, and a
// change delivered with nothing more in the log is read without asking.
func TestPlaylistChangesReadOncePerBurst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bus := &scriptedBus{}
	svc, err := rooms.New(ctx, rooms.Config{Store: storetest.SQLite(t), Bus: bus,
		Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	r, err := svc.Register(ctx, "", &clientv1.RegisterRequest{Username: "owner", Password: "password-owner"})
	if err != nil {
		t.Fatal(err)
	}
	owner := rooms.Caller{UserID: r.GetUser().GetId(), Username: "owner", Source: "198.51.100.7"}
	created, err := svc.CreateRoom(ctx, owner, &clientv1.CreateRoomRequest{Name: "cinema"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.GetRoom().GetId()
	add := func(url string) {
		t.Helper()
		if _, err := svc.AddMovie(ctx, owner, &clientv1.AddMovieRequest{RoomId: room, Url: url}); err != nil {
			t.Error(err)
		}
	}
	add("https://example.com/a.mp4")
	release, err := svc.Load(ctx, room) // a member streams the room here
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	deliver := func(seq int64, more bool, wantMovies, wantReads int) {
		t.Helper()
		msg := &clientv1.ServerMessage{Payload: &clientv1.ServerMessage_Playlist{Playlist: &clientv1.PlaylistUpdate{}}}
		svc.Deliver(room, seq, true, more, msg)
		if got := len(msg.GetPlaylist().GetMovies()); got != wantMovies {
			t.Fatalf("the change at seq %d carries %d movies, want %d", seq, got, wantMovies)
		}
		if got := svc.PlaylistReads(); got != wantReads {
			t.Fatalf("after the change at seq %d: %d playlist reads, want %d", seq, got, wantReads)
		}
	}
	// The change at 11 is delivered with more in the log. When the node
	// asks for the head, a second movie is committed and published (at 20,
	// the head it answers): the read that follows must hold it, and the
	// changes up to 20 reuse it.
	bus.mu.Lock()
	bus.head, bus.onHead = 20, func() { add("https://example.com/b.mp4") }
	bus.mu.Unlock()
	deliver(11, true, 2, 1)
	deliver(12, true, 2, 1)
	deliver(20, false, 2, 1)
	// A change published after that read is read again.
	add("https://example.com/c.mp4")
	bus.set(21, nil)
	deliver(21, true, 3, 2)
	// Without the head, a read holds only the change it was made for.
	bus.set(0, errors.New("the bus is unreachable"))
	deliver(22, true, 3, 3)
	deliver(23, true, 3, 4)
	// With nothing more in the log, the head is not asked.
	bus.set(30, nil)
	asked := bus.headsAsked()
	deliver(24, false, 3, 5)
	deliver(25, false, 3, 6)
	if bus.headsAsked() != asked {
		t.Fatalf("the head was asked %d times for changes delivered with nothing more in the log", bus.headsAsked()-asked)
	}
}
