package cli

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// maxListPages bounds --all listings.
const maxListPages = 1000

func fleetProps(items []string) ([]*croupierv1.GameProperty, error) {
	var out []*croupierv1.GameProperty
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, fleetUsageError(fmt.Errorf("--property %q: use KEY=VALUE", it))
		}
		out = append(out, &croupierv1.GameProperty{Key: k, Value: v})
	}
	return out, nil
}

func newSessionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Manage game server sessions (create, search, terminate, placements)"}
	var output string
	outFlag := func(c *cobra.Command) {
		c.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	}
	client := func(conn *grpc.ClientConn) croupierv1.FleetServiceClient {
		return croupierv1.NewFleetServiceClient(conn)
	}
	// run dials, checks -o and prints sessions or the whole response.
	run := func(c *cobra.Command, call func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error)) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		return g.withConn(func(conn *grpc.ClientConn) error {
			resp, list, err := call(client(conn))
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				return printJSON(g.stdout, resp)
			}
			return printSessions(g.stdout, list)
		})
	}

	var (
		fleetID, name, creator, data, token, id string
		maxPlayers                              int32
		props                                   []string
	)
	create := &cobra.Command{
		Use: "create", Short: "Create a game server session on a free process of a fleet", Args: cobra.NoArgs,
		Example: "  croupier session create --fleet fleet-1 --max-players 8 --name duel --property mode=duel",
		RunE: func(c *cobra.Command, _ []string) error {
			gp, err := fleetProps(props)
			if err != nil {
				return err
			}
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				resp, err := fs.CreateGameServerSession(c.Context(), &croupierv1.CreateGameServerSessionRequest{FleetId: fleetID, MaxPlayers: maxPlayers,
					Name: name, CreatorId: creator, GameProperties: gp, GameServerSessionData: data, IdempotencyToken: token, GameServerSessionId: id})
				return resp, []*croupierv1.GameServerSession{resp.GetGameServerSession()}, err
			})
		},
	}
	f := create.Flags()
	f.StringVar(&fleetID, "fleet", "", "fleet id (required)")
	f.Int32Var(&maxPlayers, "max-players", 0, "player capacity")
	f.StringVar(&name, "name", "", "session name")
	f.StringVar(&creator, "creator", "", "creator id")
	f.StringArrayVar(&props, "property", nil, "game property KEY=VALUE (repeatable, at most 16)")
	f.StringVar(&data, "data", "", "game server session data handed to the process")
	f.StringVar(&token, "idempotency-token", "", "repeating a token returns the session created first")
	f.StringVar(&id, "id", "", "custom session id")

	get := &cobra.Command{
		Use: "get SESSION_ID", Short: "Show a game server session", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				resp, err := fs.GetGameServerSession(c.Context(), &croupierv1.GetGameServerSessionRequest{GameServerSessionId: args[0]})
				return resp, []*croupierv1.GameServerSession{resp.GetGameServerSession()}, err
			})
		},
	}

	var status, filterExpr, sortExpr string
	var limit int32
	var all bool
	list := &cobra.Command{
		Use: "list", Short: "List a fleet's sessions, newest first", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				req := &croupierv1.DescribeGameServerSessionsRequest{FleetId: fleetID, StatusFilter: status, Limit: limit}
				out := &croupierv1.DescribeGameServerSessionsResponse{}
				for range maxListPages {
					resp, err := fs.DescribeGameServerSessions(c.Context(), req)
					if err != nil {
						return nil, nil, err
					}
					out.GameServerSessions = append(out.GameServerSessions, resp.GetGameServerSessions()...)
					out.NextToken = resp.GetNextToken()
					if !all || resp.GetNextToken() == "" {
						break
					}
					req.NextToken = resp.GetNextToken()
				}
				return out, out.GetGameServerSessions(), nil
			})
		},
	}
	list.Flags().StringVar(&fleetID, "fleet", "", "fleet id (required)")
	list.Flags().StringVar(&status, "status", "", "only ACTIVATING, ACTIVE, TERMINATING, TERMINATED or ERROR")
	list.Flags().Int32Var(&limit, "limit", 0, "sessions per page (default 50, at most 100)")
	list.Flags().BoolVar(&all, "all", false, "follow next tokens to the last page")

	search := &cobra.Command{
		Use: "search", Short: "Search a fleet's live sessions with the GSE filter grammar", Args: cobra.NoArgs,
		Example: `  croupier session search --fleet fleet-1 \
    --filter "hasAvailablePlayerSessions = true AND gameServerSessionProperties.mode = 'duel'" \
    --sort "creationTimeMillis DESC"`,
		RunE: func(c *cobra.Command, _ []string) error {
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				req := &croupierv1.SearchGameServerSessionsRequest{FleetId: fleetID, FilterExpression: filterExpr, SortExpression: sortExpr, Limit: limit}
				out := &croupierv1.SearchGameServerSessionsResponse{}
				for range maxListPages {
					resp, err := fs.SearchGameServerSessions(c.Context(), req)
					if err != nil {
						return nil, nil, err
					}
					out.GameServerSessions = append(out.GameServerSessions, resp.GetGameServerSessions()...)
					out.NextToken = resp.GetNextToken()
					if !all || resp.GetNextToken() == "" {
						break
					}
					req.NextToken = resp.GetNextToken()
				}
				return out, out.GetGameServerSessions(), nil
			})
		},
	}
	search.Flags().StringVar(&fleetID, "fleet", "", "fleet id (required)")
	search.Flags().StringVar(&filterExpr, "filter", "", "filter expression (docs/fleet.md)")
	search.Flags().StringVar(&sortExpr, "sort", "", "sort expression, e.g. \"creationTimeMillis DESC\"")
	search.Flags().Int32Var(&limit, "limit", 0, "sessions per page (default 50, at most 100)")
	search.Flags().BoolVar(&all, "all", false, "follow next tokens to the last page")

	var policy string
	update := &cobra.Command{
		Use: "update SESSION_ID", Short: "Change a session's name, capacity or player session creation policy", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			req := &croupierv1.UpdateGameServerSessionRequest{GameServerSessionId: args[0]}
			if c.Flags().Changed("name") {
				req.Name = &name
			}
			if c.Flags().Changed("max-players") {
				req.MaxPlayers = &maxPlayers
			}
			if c.Flags().Changed("policy") {
				req.PlayerSessionCreationPolicy = &policy
			}
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				resp, err := fs.UpdateGameServerSession(c.Context(), req)
				return resp, []*croupierv1.GameServerSession{resp.GetGameServerSession()}, err
			})
		},
	}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().Int32Var(&maxPlayers, "max-players", 0, "new capacity (not below the current players)")
	update.Flags().StringVar(&policy, "policy", "", "ACCEPT_ALL or DENY_ALL")

	var force bool
	terminate := &cobra.Command{
		Use: "terminate SESSION_ID", Short: "End a session (the process is asked to end; --force: at once)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.GameServerSession, error) {
				resp, err := fs.TerminateGameServerSession(c.Context(), &croupierv1.TerminateGameServerSessionRequest{GameServerSessionId: args[0], Force: force})
				return resp, []*croupierv1.GameServerSession{resp.GetGameServerSession()}, err
			})
		},
	}
	terminate.Flags().BoolVar(&force, "force", false, "mark TERMINATED now and kill the process")

	for _, c := range []*cobra.Command{create, get, list, search, update, terminate} {
		outFlag(c)
	}
	cmd.AddCommand(create, get, list, search, update, terminate, newPlacementCmd(g))
	return cmd
}

func newPlacementCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "placement", Short: "Queue session requests that wait for capacity"}
	var output string
	show := func(c *cobra.Command, call func(fs croupierv1.FleetServiceClient) (*croupierv1.GameServerSessionPlacement, error)) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		return g.withConn(func(conn *grpc.ClientConn) error {
			p, err := call(croupierv1.NewFleetServiceClient(conn))
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				return printJSON(g.stdout, p)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PLACEMENT\tFLEET\tSTATUS\tSESSION\tADDRESS\tSTARTED\tENDED")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.GetPlacementId(), p.GetFleetId(), p.GetStatus(), fleetDash(p.GetGameServerSessionId()),
				fleetAddr(p.GetIpAddress(), p.GetPort()), fleetTime(p.GetStartTimeMs()), fleetTime(p.GetEndTimeMs()))
			return tw.Flush()
		})
	}
	var (
		fleetID, name, data string
		maxPlayers          int32
		timeout             time.Duration
		props               []string
	)
	start := &cobra.Command{
		Use: "start PLACEMENT_ID", Short: "Queue a session request (repeating an id returns the existing placement)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			gp, err := fleetProps(props)
			if err != nil {
				return err
			}
			return show(c, func(fs croupierv1.FleetServiceClient) (*croupierv1.GameServerSessionPlacement, error) {
				resp, err := fs.StartGameServerSessionPlacement(c.Context(), &croupierv1.StartGameServerSessionPlacementRequest{
					PlacementId: args[0], FleetId: fleetID, MaxPlayers: maxPlayers, GameServerSessionName: name,
					GameProperties: gp, GameServerSessionData: data, TimeoutSeconds: int32(timeout / time.Second)})
				return resp.GetPlacement(), err
			})
		},
	}
	f := start.Flags()
	f.StringVar(&fleetID, "fleet", "", "fleet id (required)")
	f.Int32Var(&maxPlayers, "max-players", 0, "player capacity")
	f.StringVar(&name, "name", "", "session name")
	f.StringArrayVar(&props, "property", nil, "game property KEY=VALUE (repeatable)")
	f.StringVar(&data, "data", "", "game server session data")
	f.DurationVar(&timeout, "timeout", 0, "how long to wait for capacity (default 10m, at most 1h)")
	describe := &cobra.Command{
		Use: "get PLACEMENT_ID", Short: "Show a placement", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return show(c, func(fs croupierv1.FleetServiceClient) (*croupierv1.GameServerSessionPlacement, error) {
				resp, err := fs.DescribeGameServerSessionPlacement(c.Context(), &croupierv1.DescribeGameServerSessionPlacementRequest{PlacementId: args[0]})
				return resp.GetPlacement(), err
			})
		},
	}
	stop := &cobra.Command{
		Use: "stop PLACEMENT_ID", Short: "Cancel a pending placement", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return show(c, func(fs croupierv1.FleetServiceClient) (*croupierv1.GameServerSessionPlacement, error) {
				resp, err := fs.StopGameServerSessionPlacement(c.Context(), &croupierv1.StopGameServerSessionPlacementRequest{PlacementId: args[0]})
				return resp.GetPlacement(), err
			})
		},
	}
	for _, c := range []*cobra.Command{start, describe, stop} {
		c.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	}
	cmd.AddCommand(start, describe, stop)
	return cmd
}

func printSessions(w io.Writer, list []*croupierv1.GameServerSession) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tFLEET\tNAME\tSTATUS\tPLAYERS\tPOLICY\tADDRESS\tCREATED\tREASON")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", s.GetGameServerSessionId(), s.GetFleetId(), fleetDash(s.GetName()),
			s.GetStatus(), s.GetCurrentPlayerSessionCount(), s.GetMaxPlayers(), s.GetPlayerSessionCreationPolicy(),
			fleetAddr(s.GetIpAddress(), s.GetPort()), fleetTime(s.GetCreationTimeMs()), fleetDash(s.GetStatusReason()))
	}
	return tw.Flush()
}

func fleetAddr(ip string, port int32) string {
	if ip == "" && port == 0 {
		return "-"
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}
