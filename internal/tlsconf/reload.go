package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// keyPairReloader serves a certificate and re-reads it when its files
// change. The check costs two stat calls per handshake, which is small next
// to the handshake itself and makes a rotation visible to the very next
// connection.
type keyPairReloader struct {
	certFile, keyFile string

	mu       sync.Mutex
	current  *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
}

// fileStamp identifies a version of a file. Rotation tools usually replace
// files by rename, which yields a new inode (os.SameFile); an in-place
// rewrite changes the modification time or the size.
type fileStamp struct {
	info os.FileInfo
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{info: fi}, nil
}

func (s fileStamp) same(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return false
	}
	return os.SameFile(s.info, o.info) && s.info.ModTime().Equal(o.info.ModTime()) && s.info.Size() == o.info.Size()
}

// newKeyPairReloader loads the pair once; a failure here is a setup error
// reported to the operator with the file's name.
func newKeyPairReloader(certFile, keyFile string) (*keyPairReloader, error) {
	r := &keyPairReloader{certFile: certFile, keyFile: keyFile}
	cs, err := stamp(certFile)
	if err != nil {
		return nil, fileError("certificate", certFile, err)
	}
	ks, err := stamp(keyFile)
	if err != nil {
		return nil, fileError("key", keyFile, err)
	}
	cert, err := loadKeyPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	r.current, r.certStat, r.keyStat = cert, cs, ks
	return r, nil
}

// get returns the newest loadable pair. While a rotation is half done (the
// new certificate written, its key not yet) loading fails; the previous pair
// keeps being served and the load is retried on the next handshake.
func (r *keyPairReloader) get() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs, err1 := stamp(r.certFile)
	ks, err2 := stamp(r.keyFile)
	if err1 != nil || err2 != nil || (cs.same(r.certStat) && ks.same(r.keyStat)) {
		return r.current
	}
	cert, err := loadKeyPair(r.certFile, r.keyFile, time.Now())
	if err != nil {
		return r.current
	}
	r.current, r.certStat, r.keyStat = cert, cs, ks
	return r.current
}

func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	if _, err := os.Stat(keyFile); err != nil {
		return nil, fileError("key", keyFile, err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return nil, fileError("certificate", pe.Path, pe.Err)
		}
		return nil, fmt.Errorf("TLS certificate %q with key %q: %w; %s", certFile, keyFile, err, initHint)
	}
	// Since Go 1.23 LoadX509KeyPair fills Leaf.
	if leaf := cert.Leaf; leaf != nil && now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("TLS certificate %q expired on %s; issue a new one with \"croupier certs issue\" (or \"croupier certs init --force\" for a dev setup)", certFile, leaf.NotAfter.Format(time.RFC3339))
	}
	return &cert, nil
}
