package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// newCertsRevokeCmd revokes a certificate on the server (not a local file
// operation: the server keeps the revocation list).
func newCertsRevokeCmd(g *globals) *cobra.Command {
	var serial, reason string
	cmd := &cobra.Command{
		Use:   "revoke [CERT_FILE] [--serial HEX] --reason TEXT",
		Short: "Revoke an agent or client certificate on the server (cuts the agent's tunnel)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &croupierv1.RevokeCertificateRequest{Serial: serial, Reason: reason}
			if len(args) == 1 {
				b, err := os.ReadFile(args[0])
				if err != nil {
					return &exitError{code: exitCallFailed, err: err}
				}
				req.CertificatePem = string(b)
			}
			if req.CertificatePem == "" && req.Serial == "" {
				return &exitError{code: exitCallFailed, err: fmt.Errorf("name a certificate file or --serial")}
			}
			if strings.TrimSpace(reason) == "" {
				return &exitError{code: exitCallFailed, err: fmt.Errorf("--reason is required: it is recorded in the audit log")}
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewCertificateServiceClient(conn).RevokeCertificate(cmd.Context(), req)
				if err != nil {
					return callError(err)
				}
				r := resp.GetRevoked()
				_, err = fmt.Fprintf(g.stdout, "revoked %s %s; tunnels cut: %s\n", r.GetSerial(), r.GetSubject(), strings.Join(resp.GetDisconnectedAgents(), ", "))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&serial, "serial", "", "serial number (hex) instead of a certificate file")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	return cmd
}

func newCertsRevokedCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "revoked", Short: "List revoked certificates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewCertificateServiceClient(conn).ListRevokedCertificates(cmd.Context(), &croupierv1.ListRevokedCertificatesRequest{})
				if err != nil {
					return callError(err)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SERIAL\tSUBJECT\tREVOKED\tBY\tREASON")
				for _, c := range resp.GetCertificates() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.GetSerial(), c.GetSubject(), time.UnixMilli(c.GetRevokedAtMs()).UTC().Format(time.RFC3339), c.GetRevokedBy(), c.GetReason())
				}
				return tw.Flush()
			})
		},
	}
}
