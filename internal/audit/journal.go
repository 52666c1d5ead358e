package audit

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/croupier/croupier/internal/store"
)

// The audit journal is the file an entry is handed off to before the call
// that produced it answers (see Log.Record): one write(2) per entry, no
// fsync. A process crash loses nothing (the bytes are in the kernel's page
// cache); an OS crash or power loss can lose the entries of the last
// moments (until the kernel writes the pages back, ~5–30 s on Linux), as
// docs/storage.md says. The flusher moves entries into the hash-chained
// audit_log table and then empties the file; a server starting replays what
// is left.
//
// Layout: a header — journalMagic and the journal's id (32 hex digits, new
// for every file, so the store can tell this journal's entries from another
// node's) and '\n' — then frames: a little-endian uint32 body length, a
// CRC-32C of the body, and the body (the journal sequence, then the row's
// fields; see appendFrame). Sequences grow by one per entry for the life of
// the id, across truncations; the store keeps, per id, the last sequence
// stored, in the same transaction as the rows (store.AppendJournaled).
const (
	journalMagic     = "CRAUDJ01"
	journalHeaderLen = len(journalMagic) + 32 + 1
	// maxFrameBody bounds one entry on replay: a length beyond it is a
	// corrupt frame, not an allocation.
	maxFrameBody = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the open journal file. It is not safe for concurrent use: the
// Log serialises calls under its journal mutex.
type journal struct {
	path string
	id   string
	f    *os.File // opened O_APPEND: a write lands at the end, also after a truncation
	size int64
	buf  []byte // frame being encoded, reused
	// broken is set when a failed write could not be undone (the file may end
	// in a partial frame): later appends fail rather than write after it.
	broken error
}

// journalEntry is one entry read back from the file.
type journalEntry struct {
	seq int64
	rec store.AuditRecord
}

// openJournal opens the journal at path (creating it, 0600, and its
// directory, 0700) and returns the entries it holds. A torn or corrupt tail
// (an OS crash in the middle of a write) ends the entries; tornBytes says
// how many bytes were dropped.
func openJournal(path string) (j *journal, entries []journalEntry, tornBytes int64, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := f.Chmod(0o600); err != nil { // it may predate us, with a wider mode
		return nil, nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("audit journal: %w", err)
	}
	j = &journal{path: path, f: f}
	if st.Size() == 0 {
		if j.id, err = newJournalID(); err != nil {
			return nil, nil, 0, err
		}
		if err := j.writeHeader(f); err != nil {
			return nil, nil, 0, err
		}
		j.size = int64(journalHeaderLen)
		return j, nil, 0, nil
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, st.Size()), 64<<10)
	hdr := make([]byte, journalHeaderLen)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:len(journalMagic)]) != journalMagic || hdr[journalHeaderLen-1] != '\n' {
		return nil, nil, 0, fmt.Errorf("audit journal %s: not a Croupier audit journal (bad header); move it aside to start, and keep it: it may hold audit entries", path)
	}
	j.id = string(hdr[len(journalMagic) : journalHeaderLen-1])
	if _, err := hex.DecodeString(j.id); err != nil {
		return nil, nil, 0, fmt.Errorf("audit journal %s: bad journal id in header; move it aside to start, and keep it: it may hold audit entries", path)
	}
	end := int64(journalHeaderLen)
	var head [8]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			break // io.EOF at a frame boundary, or a torn frame header
		}
		n, sum := binary.LittleEndian.Uint32(head[:4]), binary.LittleEndian.Uint32(head[4:])
		if n > maxFrameBody {
			break
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil || crc32.Checksum(body, crcTable) != sum {
			break
		}
		e, err := decodeFrame(body)
		if err != nil {
			break
		}
		entries = append(entries, e)
		end += 8 + int64(n)
	}
	j.size = st.Size()
	return j, entries, st.Size() - end, nil
}

func newJournalID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("audit journal: id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (j *journal) writeHeader(f *os.File) error {
	if _, err := f.Write([]byte(journalMagic + j.id + "\n")); err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	return nil
}

// append writes e as one frame with one write(2). On failure the file is
// cut back to where it was, so no partial frame hides the entries after it.
func (j *journal) append(e journalEntry) error {
	if j.broken != nil {
		return j.broken
	}
	j.buf = appendFrame(j.buf[:0], e)
	n, err := j.f.Write(j.buf)
	if err == nil {
		j.size += int64(n)
		return nil
	}
	err = fmt.Errorf("audit journal: write: %w", err)
	if n > 0 {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("audit journal %s: a failed write left a partial entry that could not be removed (%v); restart the server", j.path, terr)
		}
	}
	return err
}

// reset empties the journal once every entry in it is stored.
func (j *journal) reset() error {
	if err := j.f.Truncate(int64(journalHeaderLen)); err != nil {
		return fmt.Errorf("audit journal: truncate: %w", err)
	}
	j.size = int64(journalHeaderLen)
	j.broken = nil // whatever partial frame there was is gone
	return nil
}

// rewrite replaces the journal with one holding only entries (those not yet
// stored), for when the flusher never finds it empty under steady load. The
// new file is complete before it is renamed over the old one, so a crash
// at any point leaves one of the two, each replayable.
func (j *journal) rewrite(entries []journalEntry) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	buf := []byte(journalMagic + j.id + "\n")
	for _, e := range entries {
		buf = appendFrame(buf, e)
	}
	if _, err := f.Write(buf); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("audit journal: rotate: %w", err)
	}
	_ = j.f.Close()
	j.f, j.size, j.broken = f, int64(len(buf)), nil
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// appendFrame appends e's frame to b.
func appendFrame(b []byte, e journalEntry) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length and checksum, set below
	b = binary.AppendVarint(b, e.seq)
	b = binary.AppendVarint(b, e.rec.Time.UnixMilli())
	b = binary.AppendVarint(b, e.rec.DurationMs)
	for _, s := range [...]string{e.rec.Actor, e.rec.Action, e.rec.Game, e.rec.Env, e.rec.Function,
		e.rec.Payload, e.rec.Result, e.rec.RequestID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	body := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

var errBadFrame = errors.New("audit journal: malformed entry")

// decodeFrame decodes a frame body written by appendFrame.
func decodeFrame(b []byte) (journalEntry, error) {
	var e journalEntry
	var ints [3]int64
	for i := range ints {
		v, n := binary.Varint(b)
		if n <= 0 {
			return e, errBadFrame
		}
		ints[i], b = v, b[n:]
	}
	var strs [8]string
	for i := range strs {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return e, errBadFrame
		}
		strs[i], b = string(b[n:n+int(l)]), b[n+int(l):]
	}
	if len(b) != 0 {
		return e, errBadFrame
	}
	e.seq = ints[0]
	e.rec = store.AuditRecord{Time: time.UnixMilli(ints[1]).UTC(), DurationMs: ints[2],
		Actor: strs[0], Action: strs[1], Game: strs[2], Env: strs[3], Function: strs[4],
		Payload: strs[5], Result: strs[6], RequestID: strs[7]}
	return e, nil
}

// storable makes rec's text fields valid UTF-8 without NUL bytes (each bad
// byte becomes U+FFFD), which PostgreSQL's text columns require: a row the
// database refuses would otherwise stay at the head of the flusher's queue
// and block every entry behind it. Valid text is left as it is.
func storable(rec *store.AuditRecord) {
	for _, f := range [...]*string{&rec.Actor, &rec.Action, &rec.Game, &rec.Env, &rec.Function,
		&rec.Payload, &rec.Result, &rec.RequestID} {
		if utf8.ValidString(*f) && strings.IndexByte(*f, 0) < 0 {
			continue
		}
		*f = strings.ReplaceAll(strings.ToValidUTF8(*f, "\uFFFD"), "\x00", "\uFFFD")
	}
}
