// Package cli implements the croupier command line: the daemons (server,
// agent, dev) and the client verbs. Commands parse flags, build typed config
// and hand over to the domain packages; they hold no logic of their own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// globals are the flags every command sees.
type globals struct {
	logLevel  string
	logFormat string
	profile   string
	stdout    io.Writer
	stderr    io.Writer
	stdin     io.Reader
}

func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

// exitUsage is the exit code of a command line cobra refuses before the
// command runs: an unknown command or flag, a flag value that does not
// parse, a wrong number of arguments, a missing required flag. It is
// exitCallFailed's 2, the code of the usage errors commands find
// themselves (a payload that is not JSON, an unknown -o), so 1 keeps
// meaning "the function, job or audit chain failed".
const exitUsage = exitCallFailed

// runError marks an error a command's RunE returned, as opposed to one
// cobra returned before running it (see markRunErrors).
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// markRunErrors wraps the RunE of c and its subcommands so that their
// errors are runErrors: whatever cobra returns otherwise is a usage error.
// Cobra gives no hook for every kind of usage error (missing required
// flags, unknown commands), so Main tells them apart this way.
func markRunErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// Main runs the CLI and returns the process exit code: the code an
// exitError carries, exitUsage for a command line cobra refused, 1 for
// other errors of a command.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signalContext(context.Background(), stderr)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "Error:", ee.err)
		}
		return ee.code
	}
	var re *runError
	if !errors.As(err, &re) {
		fmt.Fprintln(stderr, "Error:", err)
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintln(stderr, "Error:", re.err)
	return 1
}

// signalContext is cancelled on the first SIGINT/SIGTERM; a second signal
// forces the process to exit at once.
func signalContext(parent context.Context, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(stderr, "second signal: exiting now")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "croupier",
		Short: "Croupier: the control plane of an online game",
		Long: `Croupier runs the control plane of an online game: operators invoke functions
that live game servers registered (GM tools) and follow long jobs; agents
inside game networks dial out to the server and are called back over that
connection.

Start everything on one machine with "croupier dev".`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", envOr("CROUPIER_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", envOr("CROUPIER_LOG_FORMAT", "text"), "log format: text or json")
	pf.StringVar(&g.profile, "profile", os.Getenv("CROUPIER_PROFILE"), "client profile file (address, CA, credentials); env CROUPIER_PROFILE")

	root.AddCommand(
		newVersionCmd(g),
		newServerCmd(g),
		newAgentCmd(g),
		newGatewayCmd(g),
		newDevCmd(g),
		newCertsCmd(g),
		newMigrateCmd(g),
		newInvokeCmd(g),
		newRegistryCmd(g),
		newAgentsCmd(g),
		newFunctionCmd(g),
		newJobCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newUserCmd(g),
		newRoleCmd(g),
		newApprovalsCmd(g),
		newAuditCmd(g),
		newFleetCmd(g),
		newSessionCmd(g),
		newPlayerCmd(g),
	)
	markRunErrors(root)
	return root
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
