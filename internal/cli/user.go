package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage operator accounts (needs user:admin)"}
	var passwordStdin bool
	add := &cobra.Command{
		Use: "add USERNAME", Short: "Create a user (password prompted, or --password-stdin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := newPassword(g, bufio.NewReader(g.stdin), passwordStdin)
			if err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				if _, err := croupierv1.NewUserServiceClient(conn).CreateUser(cmd.Context(),
					&croupierv1.CreateUserRequest{Username: args[0], Password: pw}); err != nil {
					return callError(err)
				}
				_, err := fmt.Fprintf(g.stdout, "user %s created; grant roles with: croupier role grant %s ROLE --scope SCOPE\n", args[0], args[0])
				return err
			})
		},
	}
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")

	var self bool
	passwd := &cobra.Command{
		Use:   "passwd USERNAME",
		Short: "Set a user's password (ends the user's sessions)",
		Long: `passwd sets a user's password and ends all of the user's login sessions.
Administrators (user:admin) set anyone's; to change your own without it, pass
--self: the current password is asked for first (with --password-stdin, the
current password is the first line and the new one the second).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := bufio.NewReader(g.stdin)
			var current string
			if self {
				var err error
				if current, err = readPassword(g, in, passwordStdin, "Current password: "); err != nil {
					return &exitError{code: exitCallFailed, err: err}
				}
			}
			pw, err := newPassword(g, in, passwordStdin)
			if err != nil {
				return &exitError{code: exitCallFailed, err: err}
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				if _, err := croupierv1.NewUserServiceClient(conn).SetPassword(cmd.Context(),
					&croupierv1.SetPasswordRequest{Username: args[0], Password: pw, CurrentPassword: current}); err != nil {
					return callError(err)
				}
				_, err := fmt.Fprintf(g.stdout, "password of %s changed; its sessions were ended\n", args[0])
				return err
			})
		},
	}
	passwd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read passwords from standard input, one per line")
	passwd.Flags().BoolVar(&self, "self", false, "change your own password (asks for the current one)")

	setDisabled := func(disabled bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				c := croupierv1.NewUserServiceClient(conn)
				var err error
				if disabled {
					_, err = c.DisableUser(cmd.Context(), &croupierv1.DisableUserRequest{Username: args[0]})
				} else {
					_, err = c.EnableUser(cmd.Context(), &croupierv1.EnableUserRequest{Username: args[0]})
				}
				if err != nil {
					return callError(err)
				}
				state := "enabled"
				if disabled {
					state = "disabled; its sessions were ended"
				}
				_, err = fmt.Fprintf(g.stdout, "user %s %s\n", args[0], state)
				return err
			})
		}
	}
	disable := &cobra.Command{Use: "disable USERNAME", Short: "Disable a user and end its sessions", Args: cobra.ExactArgs(1), RunE: setDisabled(true)}
	enable := &cobra.Command{Use: "enable USERNAME", Short: "Re-enable a disabled user", Args: cobra.ExactArgs(1), RunE: setDisabled(false)}

	var output string
	list := &cobra.Command{
		Use: "list", Short: "List users and their roles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewUserServiceClient(conn).ListUsers(cmd.Context(), &croupierv1.ListUsersRequest{})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tDISABLED\tCREATED\tROLES")
				for _, u := range resp.GetUsers() {
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", u.GetUsername(), u.GetDisabled(),
						time.UnixMilli(u.GetCreatedAtMs()).UTC().Format(time.RFC3339), bindingsText(u.GetRoles()))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	cmd.AddCommand(add, passwd, disable, enable, list)
	return cmd
}

func bindingsText(bs []*croupierv1.RoleBinding) string {
	if len(bs) == 0 {
		return "-"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.GetRole() + "@" + b.GetScope()
	}
	return strings.Join(parts, ",")
}

// newPassword reads a new password: the next stdin line, or prompted twice
// on the terminal.
func newPassword(g *globals, in *bufio.Reader, fromStdin bool) (string, error) {
	pw, err := readPassword(g, in, fromStdin, "New password: ")
	if err != nil || fromStdin {
		return pw, err
	}
	again, err := readPassword(g, in, false, "Repeat password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}
