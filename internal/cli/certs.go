package cli

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/config"
	"github.com/spf13/cobra"
)

// certsDefaultDir is where "certs" commands look when --dir/--ca-dir is not
// given: the certs directory of the default data dir, which is also where
// the server and agent look for their certificates.
func certsDefaultDir() string {
	return filepath.Join(config.DefaultDataDir(), "certs")
}

func newCertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create and inspect the certificates of mutual TLS",
		Long: `Croupier agents and operator tools authenticate to the server with client
certificates signed by a private CA; the server authenticates with a server
certificate signed by the same CA.

"certs init" creates a development CA with a server, an agent and an operator
client certificate. "certs issue" signs further certificates with that CA;
agent certificates carry the agent id and its game/env scope.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCertsInitCmd(g), newCertsIssueCmd(g), newCertsShowCmd(g), newCertsRevokeCmd(g), newCertsRevokedCmd(g))
	return cmd
}

func newCertsInitCmd(g *globals) *cobra.Command {
	var (
		dir  string
		opts certs.InitOptions
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a dev CA and server, agent and client certificates",
		Example: `  croupier certs init
  croupier certs init --dir /etc/croupier/certs --host croupier.internal --host 10.0.0.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := certs.Init(dir, opts)
			if err != nil {
				return err
			}
			return printWritten(g.stdout, b.Written)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", certsDefaultDir(), "directory to write the certificates to (default $CROUPIER_DATA_DIR/certs)")
	f.StringSliceVar(&opts.Hosts, "host", nil, "extra DNS name or IP of the server certificate (repeatable; localhost, 127.0.0.1 and ::1 are always included)")
	f.BoolVar(&opts.Force, "force", false, "replace existing files (invalidates every certificate issued by the old CA)")
	f.StringVar(&opts.AgentName, "agent-name", certs.DevAgentName, "agent id of the agent certificate")
	f.StringVar(&opts.Game, "game", certs.DevGame, "game the agent certificate is scoped to")
	f.StringVar(&opts.Env, "env", certs.DevEnv, "environment the agent certificate is scoped to")
	f.StringVar(&opts.ClientName, "client-name", certs.DevClientName, "operator name of the client certificate")
	f.DurationVar(&opts.Validity, "validity", certs.LeafValidity, "validity of the server, agent and client certificates")
	return cmd
}

// issueFlags are shared by the "certs issue" subcommands.
type issueFlags struct {
	caDir string
	out   string
	force bool
	req   certs.IssueRequest
}

func newCertsIssueCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Sign a server, agent, client or business certificate with the CA",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		newIssueKindCmd(g, certs.KindAgent,
			"Issue an agent certificate scoped to one game and environment",
			"  croupier certs issue agent --name host-17 --game poker --env prod"),
		newIssueKindCmd(g, certs.KindClient,
			"Issue an operator client certificate",
			"  croupier certs issue client --name alice"),
		newIssueKindCmd(g, certs.KindServer,
			"Issue a server certificate for the given hosts",
			"  croupier certs issue server --host croupier.internal --host 10.0.0.5"),
		newIssueKindCmd(g, certs.KindBusiness,
			"Issue a certificate for a business process of the player gateway (business listener mTLS)",
			"  croupier certs issue business --name chat-1"),
	)
	return cmd
}

func newIssueKindCmd(g *globals, kind certs.Kind, short, example string) *cobra.Command {
	fl := &issueFlags{req: certs.IssueRequest{Kind: kind}}
	cmd := &cobra.Command{
		Use:     string(kind),
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runIssue(g, fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.caDir, "ca-dir", certsDefaultDir(), "directory holding ca.crt and ca.key (default $CROUPIER_DATA_DIR/certs)")
	f.StringVar(&fl.out, "out", "", "path prefix of the output files: PREFIX.crt and PREFIX.key (default <ca-dir>/"+string(kind)+"-<name>)")
	f.BoolVar(&fl.force, "force", false, "replace existing output files")
	f.DurationVar(&fl.req.Validity, "validity", certs.LeafValidity, "validity of the certificate (capped at the CA's expiry)")
	switch kind {
	case certs.KindAgent:
		f.StringVar(&fl.req.Name, "name", "", "agent id (required)")
		f.StringVar(&fl.req.Game, "game", "", "game the agent may serve (required)")
		f.StringVar(&fl.req.Env, "env", "", "environment the agent may serve (required)")
		mustMarkRequired(cmd, "name", "game", "env")
	case certs.KindClient:
		f.StringVar(&fl.req.Name, "name", "", "operator name (required)")
		mustMarkRequired(cmd, "name")
	case certs.KindBusiness:
		f.StringVar(&fl.req.Name, "name", "", "business process name (required)")
		mustMarkRequired(cmd, "name")
	case certs.KindServer:
		f.StringSliceVar(&fl.req.Hosts, "host", nil, "DNS name or IP the server is reached at (required, repeatable)")
		f.StringVar(&fl.req.Name, "name", certs.DevServerName, "server name recorded in the certificate's identity")
		mustMarkRequired(cmd, "host")
	}
	return cmd
}

// mustMarkRequired panics only on a programming error: the flag names are
// constants defined right next to the call.
func mustMarkRequired(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			panic(err)
		}
	}
}

func runIssue(g *globals, fl *issueFlags) error {
	certPEM, keyPEM, err := certs.Issue(fl.caDir, fl.req)
	if err != nil {
		return err
	}
	prefix := fl.out
	if prefix == "" {
		prefix = filepath.Join(fl.caDir, string(fl.req.Kind)+"-"+fileLabel(fl.req))
	}
	certPath, keyPath := prefix+".crt", prefix+".key"
	if err := certs.WriteKeyPair(certPath, keyPath, certPEM, keyPEM, fl.force); err != nil {
		return err
	}
	if err := printWritten(g.stdout, []string{certPath, keyPath}); err != nil {
		return err
	}
	parsed, err := certs.ParseCertificatesPEM(certPEM)
	if err != nil {
		return err
	}
	id, err := certs.IdentityFromCert(parsed[0])
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "identity: %s\nexpires:  %s\n", id, parsed[0].NotAfter.UTC().Format(time.RFC3339))
	return err
}

// fileLabel names the default output file: the agent/client name, or for a
// server its first host made safe for a file name ("::1" has colons).
func fileLabel(req certs.IssueRequest) string {
	if req.Kind != certs.KindServer || len(req.Hosts) == 0 {
		return req.Name
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, strings.TrimSpace(req.Hosts[0]))
}

func printWritten(w io.Writer, files []string) error {
	for _, f := range files {
		if _, err := fmt.Fprintln(w, "wrote", f); err != nil {
			return err
		}
	}
	return nil
}

func newCertsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE...",
		Short: "Print the subject, SANs, identity and validity of certificates",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for i, file := range args {
				if i > 0 {
					fmt.Fprintln(g.stdout)
				}
				if err := showCertFile(g.stdout, file, time.Now()); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}
}

func showCertFile(w io.Writer, file string, now time.Time) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	list, err := certs.ParseCertificatesPEM(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for i, c := range list {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := showCert(w, file, c, now); err != nil {
			return err
		}
	}
	return nil
}

func showCert(w io.Writer, file string, c *x509.Certificate, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("file", file)
	row("subject", c.Subject.String())
	row("issuer", c.Issuer.String())
	row("serial", certs.Serial(c))
	if c.IsCA {
		row("role", "certificate authority")
	} else if id, err := certs.IdentityFromCert(c); err == nil {
		row("identity", id.String())
		row("kind", string(id.Kind))
		row("name", id.Name)
		row("scope", scopeOf(id))
	} else {
		row("identity", "none ("+err.Error()+")")
	}
	row("DNS names", strings.Join(c.DNSNames, ", "))
	row("IP addresses", joinIPs(c))
	row("URIs", joinURIs(c.URIs))
	row("usage", extUsage(c))
	row("valid from", c.NotBefore.UTC().Format(time.RFC3339))
	row("valid until", c.NotAfter.UTC().Format(time.RFC3339)+" ("+validityState(c, now)+")")
	return tw.Flush()
}

func scopeOf(id certs.Identity) string {
	if id.Kind != certs.KindAgent {
		return ""
	}
	return "game=" + id.Game + " env=" + id.Env
}

func joinIPs(c *x509.Certificate) string {
	s := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func joinURIs(us []*url.URL) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return strings.Join(s, ", ")
}

func extUsage(c *x509.Certificate) string {
	var s []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			s = append(s, "server auth")
		case x509.ExtKeyUsageClientAuth:
			s = append(s, "client auth")
		case x509.ExtKeyUsageAny:
			s = append(s, "any")
		default:
			s = append(s, fmt.Sprintf("ext-key-usage(%d)", u))
		}
	}
	if c.KeyUsage&x509.KeyUsageCertSign != 0 {
		s = append(s, "certificate signing")
	}
	return strings.Join(s, ", ")
}

func validityState(c *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "NOT YET VALID"
	case now.After(c.NotAfter):
		return "EXPIRED"
	}
	return fmt.Sprintf("expires in %d days", int(c.NotAfter.Sub(now).Hours()/24))
}
