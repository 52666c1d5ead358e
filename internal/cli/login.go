package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"
)

// refreshMargin renews an access token this long before it expires, so a
// call does not leave with a token that dies on the way.
const refreshMargin = 30 * time.Second

func newLoginCmd(g *globals) *cobra.Command {
	var (
		username             string
		passwordStdin, renew bool
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in and store an access token in the client profile",
		Long: `login exchanges a username and password for an access token and a refresh
token and writes both into the client profile (--profile), so later commands
authenticate with them. The password is prompted for without echo, or read
from the first line of standard input with --password-stdin. The access token
lasts minutes; commands renew it with the refresh token when it expires.
--refresh renews it now without a password.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProfile(g.profile, g.logger())
			if err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			in := bufio.NewReader(g.stdin)
			var req *croupierv1.LoginRequest
			if !renew {
				if username == "" {
					if passwordStdin {
						return &exitError{code: exitCallFailed, err: errors.New("--password-stdin needs --username")}
					}
					fmt.Fprint(g.stderr, "Username: ")
					if username, err = readLine(in); err != nil || username == "" {
						return &exitError{code: exitCallFailed, err: errors.New("no username given")}
					}
				}
				pw, err := readPassword(g, in, passwordStdin, "Password: ")
				if err != nil {
					return &exitError{code: exitCallFailed, err: err}
				}
				req = &croupierv1.LoginRequest{Username: username, Password: pw}
			} else if p.RefreshToken == "" {
				return &exitError{code: exitCallFailed, err: errors.New("the profile holds no refresh token: log in with a password")}
			}
			anon := *p
			anon.Token = ""
			conn, err := anon.dial()
			if err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			defer conn.Close()
			client := croupierv1.NewAuthServiceClient(conn)
			var access, refresh string
			var expiresIn int64
			if renew {
				resp, err := client.Refresh(cmd.Context(), &croupierv1.RefreshRequest{RefreshToken: p.RefreshToken})
				if err != nil {
					return callError(err)
				}
				access, refresh, expiresIn = resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetExpiresIn()
			} else {
				resp, err := client.Login(cmd.Context(), req)
				if err != nil {
					return callError(err)
				}
				access, refresh, expiresIn = resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetExpiresIn()
			}
			if err := saveTokens(g.profile, access, refresh); err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			who := username
			if who == "" {
				who = subjectOf(access)
			}
			_, err = fmt.Fprintf(g.stdout, "Logged in as %s; access token valid for %s, renewed automatically. Profile: %s\n",
				who, time.Duration(expiresIn)*time.Second, g.profile)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&username, "username", "u", "", "user name (prompted for when omitted)")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.BoolVar(&renew, "refresh", false, "renew the access token with the stored refresh token instead of a password")
	return cmd
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the login session and remove its tokens from the client profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProfile(g.profile, g.logger())
			if err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			if p.RefreshToken != "" {
				anon := *p
				anon.Token = ""
				conn, err := anon.dial()
				if err != nil {
					return &exitError{code: exitCallFailed, err: err}
				}
				defer conn.Close()
				_, err = croupierv1.NewAuthServiceClient(conn).Logout(cmd.Context(), &croupierv1.LogoutRequest{RefreshToken: p.RefreshToken})
				// A session that is already gone is as logged out as it gets.
				if err != nil && status.Code(err) != codes.Unauthenticated {
					return callError(err)
				}
			}
			if err := saveTokens(g.profile, "", ""); err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			_, err = fmt.Fprintln(g.stdout, "Logged out.")
			return err
		},
	}
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// readPassword reads a password from stdin's next line (fromStdin) or
// prompts for it on the terminal without echo.
func readPassword(g *globals, in *bufio.Reader, fromStdin bool, prompt string) (string, error) {
	if fromStdin {
		pw, err := readLine(in)
		if err != nil || pw == "" {
			return "", errors.New("no password on standard input")
		}
		return pw, nil
	}
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("cannot prompt for a password: standard input is not a terminal; pipe it with --password-stdin")
	}
	fmt.Fprint(g.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(g.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(b) == 0 {
		return "", errors.New("empty password")
	}
	return string(b), nil
}

// saveTokens writes the tokens into the profile file, keeping everything
// else as written (relative paths stay relative). It replaces the file
// atomically, so a concurrent reader sees the old or the new profile, never
// half of one.
func saveTokens(path, access, refresh string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read profile: %w", err)
	}
	p := &Profile{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	p.Token, p.RefreshToken = access, refresh
	out, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	return writePrivateFile(path, out)
}

// jwtClaims reads the unverified claims of an access token: the client only
// needs to know when to renew it and whose it is; the server verifies.
func jwtClaims(token string) (sub string, exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}, false
	}
	var c struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return "", time.Time{}, false
	}
	return c.Sub, time.Unix(c.Exp, 0), c.Exp > 0
}

func subjectOf(token string) string {
	sub, _, _ := jwtClaims(token)
	return sub
}

// tokenCreds sends the profile's access token with every call, renewing it
// with the refresh token (and saving both to the profile) shortly before it
// expires.
type tokenCreds struct {
	base     Profile // the profile without a token, for the renewal call
	path     string
	insecure bool
	now      func() time.Time

	mu      sync.Mutex
	access  string
	refresh string
}

func (p *Profile) tokenCredentials() credentials.PerRPCCredentials {
	base := *p
	base.Token = ""
	return &tokenCreds{base: base, path: p.path, insecure: p.Insecure, now: time.Now, access: p.Token, refresh: p.RefreshToken}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *tokenCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exp, ok := jwtClaims(c.access); ok && c.refresh != "" && c.path != "" && !c.now().Add(refreshMargin).Before(exp) {
		if err := c.renew(ctx); err != nil {
			return nil, err
		}
	}
	return map[string]string{"authorization": "Bearer " + c.access}, nil
}

func (c *tokenCreds) renew(ctx context.Context) error {
	conn, err := c.base.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := croupierv1.NewAuthServiceClient(conn).Refresh(ctx, &croupierv1.RefreshRequest{RefreshToken: c.refresh})
	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.Unauthenticated {
			return status.Errorf(codes.Unauthenticated, "the access token expired and could not be renewed (%s); run croupier login", st.Message())
		}
		return err
	}
	c.access, c.refresh = resp.GetAccessToken(), resp.GetRefreshToken()
	if err := saveTokens(c.path, c.access, c.refresh); err != nil {
		// The old refresh token is spent: without the new one on disk the
		// next command cannot renew. Fail now, saying why, rather than
		// leave the user to discover it later.
		return status.Errorf(codes.Unauthenticated, "renewed the access token but could not save it (%v); run croupier login", err)
	}
	return nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: tokens
// travel only over TLS, except to an insecure loopback server (which
// Profile.dial allows only on loopback addresses).
func (c *tokenCreds) RequireTransportSecurity() bool { return !c.insecure }
