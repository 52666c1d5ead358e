package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

func newPlayerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "player", Short: "Reserve and inspect player sessions"}
	var output string
	run := func(c *cobra.Command, call func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.PlayerSession, error)) error {
		if err := checkOutput(output); err != nil {
			return err
		}
		return g.withConn(func(conn *grpc.ClientConn) error {
			resp, list, err := call(croupierv1.NewFleetServiceClient(conn))
			if err != nil {
				return callError(err)
			}
			if output == "json" {
				return printJSON(g.stdout, resp)
			}
			return printPlayers(g.stdout, list)
		})
	}

	join := &cobra.Command{
		Use:   "join SESSION_ID PLAYER_ID[=PLAYER_DATA]...",
		Short: "Reserve seats in an ACTIVE session (one player, or a batch of up to 25)",
		Long: `join reserves a seat for each player and prints the player sessions with the
address to connect to. The game server must accept a player session
(AcceptPlayerSession) before the fleet's reservation timeout, or it times out.`,
		Example: "  croupier player join gssn-1 alice bob=level:7",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			players := make([]*croupierv1.PlayerJoin, 0, len(args)-1)
			for _, a := range args[1:] {
				id, data, _ := strings.Cut(a, "=")
				players = append(players, &croupierv1.PlayerJoin{PlayerId: id, PlayerData: data})
			}
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.PlayerSession, error) {
				if len(players) == 1 {
					resp, err := fs.JoinGameServerSession(c.Context(), &croupierv1.JoinGameServerSessionRequest{
						GameServerSessionId: args[0], PlayerId: players[0].GetPlayerId(), PlayerData: players[0].GetPlayerData()})
					return resp, []*croupierv1.PlayerSession{resp.GetPlayerSession()}, err
				}
				resp, err := fs.JoinGameServerSessionBatch(c.Context(), &croupierv1.JoinGameServerSessionBatchRequest{GameServerSessionId: args[0], Players: players})
				return resp, resp.GetPlayerSessions(), err
			})
		},
	}

	var session, player, id, status string
	var limit int32
	var all bool
	list := &cobra.Command{
		Use: "list", Short: "List player sessions of a session, of a player, or one by id", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return run(c, func(fs croupierv1.FleetServiceClient) (proto.Message, []*croupierv1.PlayerSession, error) {
				req := &croupierv1.DescribePlayerSessionsRequest{GameServerSessionId: session, PlayerId: player,
					PlayerSessionId: id, PlayerSessionStatusFilter: status, Limit: limit}
				out := &croupierv1.DescribePlayerSessionsResponse{}
				for range maxListPages {
					resp, err := fs.DescribePlayerSessions(c.Context(), req)
					if err != nil {
						return nil, nil, err
					}
					out.PlayerSessions = append(out.PlayerSessions, resp.GetPlayerSessions()...)
					out.NextToken = resp.GetNextToken()
					if !all || resp.GetNextToken() == "" {
						break
					}
					req.NextToken = resp.GetNextToken()
				}
				return out, out.GetPlayerSessions(), nil
			})
		},
	}
	f := list.Flags()
	f.StringVar(&session, "session", "", "game server session id")
	f.StringVar(&player, "player", "", "player id")
	f.StringVar(&id, "id", "", "player session id")
	f.StringVar(&status, "status", "", "only RESERVED, ACTIVE, COMPLETED or TIMEDOUT")
	f.Int32Var(&limit, "limit", 0, "player sessions per page (default 50, at most 100)")
	f.BoolVar(&all, "all", false, "follow next tokens to the last page")

	for _, c := range []*cobra.Command{join, list} {
		c.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	}
	cmd.AddCommand(join, list)
	return cmd
}

func printPlayers(w io.Writer, list []*croupierv1.PlayerSession) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAYER_SESSION\tPLAYER\tSESSION\tSTATUS\tADDRESS\tCREATED")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.GetPlayerSessionId(), p.GetPlayerId(), p.GetGameServerSessionId(),
			p.GetStatus(), fleetAddr(p.GetIpAddress(), p.GetPort()), fleetTime(p.GetCreationTimeMs()))
	}
	return tw.Flush()
}
