package audit

// Abandon simulates a crash of the process owning l: its flusher stops
// without storing what is queued and the journal file is closed as it is,
// not emptied.
func Abandon(l *Log) {
	l.jmu.Lock()
	l.jclosed = true
	l.jqueue = nil
	l.jmu.Unlock()
	close(l.stop)
	<-l.flusherDone
	_ = l.jr.close()
}

// BreakJournal closes l's journal file under it, so the next write fails.
func BreakJournal(l *Log) {
	l.jmu.Lock()
	defer l.jmu.Unlock()
	_ = l.jr.f.Close()
}

// SetRotateBytes lowers the size beyond which the flusher rewrites a journal
// it does not find empty.
func SetRotateBytes(l *Log, n int64) {
	l.jmu.Lock()
	defer l.jmu.Unlock()
	l.rotateBytes = n
}

// JournalHeaderLen is the size of an empty journal.
const JournalHeaderLen = journalHeaderLen

// OnFlush has l's flusher call f after each flush with whether it was to
// store everything (a reader, a tick, Close) or the full batches only, and
// the journal sequence of the last entry stored so far.
func OnFlush(l *Log, f func(all bool, applied int64)) { l.flushed.Store(&f) }
