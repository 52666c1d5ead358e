package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// fleetFlags are the flags that describe a fleet, shared by create and
// update. A --file (protojson croupier.v1.Fleet) is read first; flags that
// were set override it.
type fleetFlags struct {
	file, id, game, env, name, description, launchPath, protection string
	params, envVars, selector                                      []string
	concurrent, protectMinutes, activation, reservation            int32
}

func (ff *fleetFlags) add(c *cobra.Command, create bool) {
	f := c.Flags()
	f.StringVar(&ff.file, "file", "", "fleet definition as JSON (croupier.v1.Fleet); flags override its fields")
	if create {
		f.StringVar(&ff.id, "id", "", "fleet id (generated when empty)")
		f.StringVar(&ff.game, "game", "", "game id")
		f.StringVar(&ff.env, "env", "", "environment")
	}
	f.StringVar(&ff.name, "name", "", "display name")
	f.StringVar(&ff.description, "description", "", "description")
	f.StringVar(&ff.launchPath, "launch-path", "", "game server executable (one server process entry): an absolute path under the agents' build directories (agent --build-dirs)")
	f.StringArrayVar(&ff.params, "param", nil, "argument of the executable (repeatable)")
	f.StringArrayVar(&ff.envVars, "env-var", nil, "KEY=VALUE for the executable (repeatable)")
	f.Int32Var(&ff.concurrent, "concurrent", 1, "processes per agent")
	f.StringVar(&ff.protection, "protection", "", "NoProtection, TimeLimitProtection or FullProtection")
	f.Int32Var(&ff.protectMinutes, "protection-minutes", 0, "protection period of TimeLimitProtection")
	f.Int32Var(&ff.activation, "activation-timeout", 0, "seconds a new session may stay ACTIVATING (default 600)")
	f.Int32Var(&ff.reservation, "reservation-timeout", 0, "seconds a player session stays RESERVED (default 60)")
	f.StringArrayVar(&ff.selector, "selector", nil, "agent label key=value the hosting agents must have (repeatable)")
}

// apply fills f from the file and the flags the user set.
func (ff *fleetFlags) apply(c *cobra.Command, f *croupierv1.Fleet) error {
	if ff.file != "" {
		b, err := os.ReadFile(ff.file)
		if err != nil {
			return fleetUsageError(err)
		}
		if err := protojson.Unmarshal(b, f); err != nil {
			return fleetUsageError(fmt.Errorf("--file %s: %w", ff.file, err))
		}
	}
	set := func(name string) bool { return c.Flags().Changed(name) }
	str := func(name string, dst *string, v string) {
		if set(name) {
			*dst = v
		}
	}
	str("id", &f.FleetId, ff.id)
	str("game", &f.GameId, ff.game)
	str("env", &f.Env, ff.env)
	str("name", &f.Name, ff.name)
	str("description", &f.Description, ff.description)
	str("protection", &f.ProtectionPolicy, ff.protection)
	if set("protection-minutes") {
		f.ProtectionTimeLimitMinutes = ff.protectMinutes
	}
	if set("reservation-timeout") {
		f.PlayerSessionReservationTimeoutSeconds = ff.reservation
	}
	if f.RuntimeConfiguration == nil {
		f.RuntimeConfiguration = &croupierv1.RuntimeConfiguration{}
	}
	rc := f.RuntimeConfiguration
	if set("activation-timeout") {
		rc.GameServerSessionActivationTimeoutSeconds = ff.activation
	}
	if set("launch-path") || set("param") || set("env-var") || set("concurrent") {
		if len(rc.ServerProcesses) > 1 {
			return fleetUsageError(fmt.Errorf("the fleet has %d server process entries; edit them with --file", len(rc.ServerProcesses)))
		}
		if len(rc.ServerProcesses) == 0 {
			rc.ServerProcesses = []*croupierv1.ServerProcess{{ConcurrentExecutions: 1}}
		}
		sp := rc.ServerProcesses[0]
		str("launch-path", &sp.LaunchPath, ff.launchPath)
		if set("param") {
			sp.Parameters = ff.params
		}
		if set("concurrent") {
			sp.ConcurrentExecutions = ff.concurrent
		}
		if set("env-var") {
			kv, err := fleetPairs("--env-var", ff.envVars)
			if err != nil {
				return err
			}
			sp.Environment = kv
		}
	}
	if set("selector") {
		kv, err := fleetPairs("--selector", ff.selector)
		if err != nil {
			return err
		}
		f.AgentSelector = kv
	}
	return nil
}

// parsePairs parses KEY=VALUE items.
func fleetPairs(flag string, items []string) (map[string]string, error) {
	out := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, fleetUsageError(fmt.Errorf("%s %q: use KEY=VALUE", flag, it))
		}
		out[k] = v
	}
	return out, nil
}

func fleetUsageError(err error) error { return &exitError{code: exitCallFailed, err: err} }

func newFleetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "Manage fleets of game server processes (GSE-compatible fleet plane)"}
	var output string
	outFlag := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
		return c
	}
	fleetOut := func(f *croupierv1.Fleet) error {
		if output == "json" {
			return printJSON(g.stdout, f)
		}
		return printFleets(g.stdout, []*croupierv1.Fleet{f})
	}
	client := func(conn *grpc.ClientConn) croupierv1.FleetServiceClient {
		return croupierv1.NewFleetServiceClient(conn)
	}

	var cf fleetFlags
	create := &cobra.Command{
		Use: "create", Short: "Create a fleet (needs fleet:write: roles fleet-admin, admin)", Args: cobra.NoArgs,
		Long: `create defines a fleet: the game server processes the agents of a game/env
run. Agents launch only executables under their build directories (agent
--build-dirs, default DATA_DIR/builds), checked after symlinks; parameters
are passed as arguments, never through a shell. A launch path outside the
build directories of an agent that would host the fleet is refused
(LAUNCH_PATH_NOT_ALLOWED). Creating and updating fleets needs fleet:write
(built-in roles fleet-admin and admin).`,
		Example: `  croupier fleet create --game mygame --env prod --name eu-1 --launch-path /srv/croupier/builds/game/server \
    --param -log --param /var/log/game.log --concurrent 4 --protection FullProtection`,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			f := &croupierv1.Fleet{}
			if err := cf.apply(c, f); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := client(conn).CreateFleet(c.Context(), &croupierv1.CreateFleetRequest{Fleet: f})
				if err != nil {
					return callError(err)
				}
				return fleetOut(resp.GetFleet())
			})
		},
	}
	cf.add(create, true)

	var uf fleetFlags
	update := &cobra.Command{
		Use: "update FLEET_ID", Short: "Change a fleet (flags patch the current definition)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				cur, err := client(conn).GetFleet(c.Context(), &croupierv1.GetFleetRequest{FleetId: args[0]})
				if err != nil {
					return callError(err)
				}
				f := cur.GetFleet()
				if err := uf.apply(c, f); err != nil {
					return err
				}
				resp, err := client(conn).UpdateFleet(c.Context(), &croupierv1.UpdateFleetRequest{Fleet: f})
				if err != nil {
					return callError(err)
				}
				return fleetOut(resp.GetFleet())
			})
		},
	}
	uf.add(update, false)

	get := &cobra.Command{
		Use: "get FLEET_ID", Short: "Show a fleet", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := client(conn).GetFleet(c.Context(), &croupierv1.GetFleetRequest{FleetId: args[0]})
				if err != nil {
					return callError(err)
				}
				return fleetOut(resp.GetFleet())
			})
		},
	}

	var game, env string
	list := &cobra.Command{
		Use: "list", Short: "List fleets", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := client(conn).ListFleets(c.Context(), &croupierv1.ListFleetsRequest{GameId: game, Env: env})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				return printFleets(g.stdout, resp.GetFleets())
			})
		},
	}
	list.Flags().StringVar(&game, "game", "", "game id (with --env)")
	list.Flags().StringVar(&env, "env", "", "environment (with --game)")

	del := &cobra.Command{
		Use: "delete FLEET_ID", Short: "Delete a fleet that hosts no live session", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				if _, err := client(conn).DeleteFleet(c.Context(), &croupierv1.DeleteFleetRequest{FleetId: args[0]}); err != nil {
					return callError(err)
				}
				fmt.Fprintf(g.stdout, "deleted fleet %s\n", args[0])
				return nil
			})
		},
	}

	var agent, status string
	procs := &cobra.Command{
		Use: "processes FLEET_ID", Short: "List a fleet's server processes", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := client(conn).ListProcesses(c.Context(), &croupierv1.ListProcessesRequest{FleetId: args[0], AgentId: agent, Status: status})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PROCESS\tAGENT\tPID\tSTATUS\tHEALTHY\tPORT\tSESSION\tREASON")
				for _, p := range resp.GetProcesses() {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%d\t%s\t%s\n", p.GetProcessId(), p.GetAgentId(), p.GetPid(), p.GetStatus(),
						p.GetHealthy(), p.GetClientPort(), fleetDash(p.GetGameServerSessionId()), fleetDash(p.GetStatusReason()))
				}
				return tw.Flush()
			})
		},
	}
	procs.Flags().StringVar(&agent, "agent", "", "only this agent's processes")
	procs.Flags().StringVar(&status, "status", "", "only this status (LAUNCHING, ACTIVE, TERMINATING, TERMINATED, CRASHED)")

	var offset int64
	var limit int32
	logCmd := &cobra.Command{
		Use: "log FLEET_ID PROCESS_ID PATH", Short: "Print a process's log file (a logPathsToUpload entry, or stdout), also after it ended",
		Args: cobra.ExactArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				off := offset
				for range 1 << 12 { // at most 4096 chunks (4 GiB at the 1 MiB maximum)
					resp, err := client(conn).GetProcessLog(c.Context(), &croupierv1.GetProcessLogRequest{
						FleetId: args[0], ProcessId: args[1], Path: args[2], Offset: off, Limit: limit})
					if err != nil {
						return callError(err)
					}
					if _, err := g.stdout.Write(resp.GetData()); err != nil {
						return err
					}
					off += int64(len(resp.GetData()))
					if resp.GetEof() || len(resp.GetData()) == 0 {
						return nil
					}
				}
				return nil
			})
		},
	}
	logCmd.Flags().Int64Var(&offset, "offset", 0, "start at this byte")
	logCmd.Flags().Int32Var(&limit, "chunk", 0, "bytes per request (default 64 KiB, at most 1 MiB)")

	for _, c := range []*cobra.Command{create, update, get, list, procs} {
		outFlag(c)
	}
	cmd.AddCommand(create, get, list, update, del, procs, logCmd)
	return cmd
}

func printFleets(w io.Writer, fs []*croupierv1.Fleet) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLEET\tGAME\tENV\tNAME\tPROCESSES\tPROTECTION\tVERSION\tUPDATED")
	for _, f := range fs {
		var launch []string
		for _, sp := range f.GetRuntimeConfiguration().GetServerProcesses() {
			launch = append(launch, fmt.Sprintf("%dx %s", sp.GetConcurrentExecutions(), sp.GetLaunchPath()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f.GetFleetId(), f.GetGameId(), f.GetEnv(), fleetDash(f.GetName()),
			fleetDash(strings.Join(launch, ", ")), f.GetProtectionPolicy(), f.GetVersion(), fleetTime(f.GetUpdateTimeMs()))
	}
	return tw.Flush()
}

func fleetDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fleetTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
