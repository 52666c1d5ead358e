package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadFrame(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      []byte
		want    frame
		wantErr error
	}{
		{"cmd and body", appendFrame(nil, 900003001, []byte{8, 1}), frame{cmd: 900003001, body: []byte{8, 1}}, nil},
		{"cmd only", appendFrame(nil, 900003005, nil), frame{cmd: 900003005, body: []byte{}}, nil},
		{"ping", appendHeartbeat(nil, PingMessage), frame{heartbeat: true}, nil},
		{"too large", []byte{0, 0x20, 0, 0}, frame{}, ErrFrameTooLarge},
		{"truncated body", []byte{0, 0, 0, 9, 1, 2}, frame{}, io.ErrUnexpectedEOF},
		{"empty", nil, frame{}, io.EOF},
	}
	for _, tc := range cases {
		got, err := readFrame(bytes.NewReader(tc.in), 1<<20)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
			continue
		}
		if err == nil && (got.heartbeat != tc.want.heartbeat || got.cmd != tc.want.cmd || !bytes.Equal(got.body, tc.want.body)) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 3, 1, 2, 3}), 1<<20); err == nil {
		t.Error("a 3-byte frame (shorter than its cmd) decoded")
	}
}

// FuzzReadFrame checks that any byte stream either fails cleanly or decodes
// to a frame that re-encodes to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, 900001003, []byte("hello")))
	f.Add(appendHeartbeat(nil, PingMessage))
	f.Add([]byte{0, 0, 0, 2, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		fr, err := readFrame(r, 4096)
		if err != nil {
			return
		}
		used := in[:len(in)-r.Len()]
		var again []byte
		if fr.heartbeat {
			again = appendHeartbeat(nil, used[4:])
		} else {
			again = appendFrame(nil, fr.cmd, fr.body)
		}
		if !bytes.Equal(again, used) {
			t.Fatalf("re-encoded %x, read %x", again, used)
		}
	})
}
