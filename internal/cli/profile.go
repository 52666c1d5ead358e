package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/croupier/croupier/internal/secfile"
	"github.com/croupier/croupier/internal/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"gopkg.in/yaml.v3"
)

// Profile is a client profile: where the server is and how to authenticate.
// `croupier dev` writes one to DATA_DIR/client.yaml. Relative paths are
// relative to the profile file.
type Profile struct {
	// Address is the server's gRPC address (host:port).
	Address string `yaml:"address"`
	// HTTPAddress is the server's HTTP address, for REST and health.
	HTTPAddress string `yaml:"http_address,omitempty"`
	CA          string `yaml:"ca,omitempty"`
	Cert        string `yaml:"cert,omitempty"`
	Key         string `yaml:"key,omitempty"`
	ServerName  string `yaml:"server_name,omitempty"`
	// Insecure dials without TLS (loopback servers started with --insecure).
	Insecure bool `yaml:"insecure,omitempty"`
	// Token is the operator's access token (`croupier login` writes it);
	// every call sends it as `authorization: Bearer`.
	Token string `yaml:"token,omitempty"`
	// RefreshToken renews Token when it expires (see login.go).
	RefreshToken string `yaml:"refresh_token,omitempty"`

	// path is the file the profile was loaded from, where renewed tokens
	// are written back.
	path string
}

// loadProfile reads the profile named by --profile / CROUPIER_PROFILE,
// warning on log when other users can read it (it holds tokens).
func loadProfile(path string, log *slog.Logger) (*Profile, error) {
	if path == "" {
		return nil, errors.New("no client profile: pass --profile FILE or set CROUPIER_PROFILE (croupier dev writes DATA_DIR/client.yaml)")
	}
	secfile.Check(log, path)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	p := &Profile{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	if p.Address == "" {
		return nil, fmt.Errorf("profile %s: address is required", path)
	}
	base := filepath.Dir(path)
	for _, f := range []*string{&p.CA, &p.Cert, &p.Key} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(base, *f)
		}
	}
	return p, nil
}

// writeProfile writes p to path, mode 0600 (it holds tokens and names key
// files) even when it replaces a wider file.
func writeProfile(path string, p *Profile) error {
	b, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	return writePrivateFile(path, b)
}

// writePrivateFile replaces path with data through a 0600 temporary file in
// the same directory and a rename, so readers never see a partial file and
// the result is 0600 whatever the umask or the old file's mode.
func writePrivateFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".profile-*")
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), secfile.Mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	return nil
}

// dial connects to the profile's server.
func (p *Profile) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if !p.Insecure {
		cfg, err := tlsconf.ClientConfig(p.CA, p.Cert, p.Key, p.ServerName)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	} else if err := tlsconf.CheckInsecureAllowed(p.Address, true); err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16 << 20)), grpc.WithIdleTimeout(time.Minute)}
	if p.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(p.tokenCredentials()))
	}
	return grpc.NewClient(p.Address, opts...)
}
