package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// exitAuditBroken is audit verify's exit status when the chain is broken:
// the check ran and found tampering, as distinct from a failed call (2).
const exitAuditBroken = 1

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the audit log (needs audit:read)"}
	var (
		game, env, actor, fn, action, from, to, pageToken, output string
		since                                                     time.Duration
		pageSize                                                  int32
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit rows, newest first",
		Long: `list prints audit rows newest first. Without --game it reads every game,
which needs audit:read on *. Times are RFC 3339 (2030-01-02T15:04:05Z);
--since 1h is short for --from one hour ago.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			req := &croupierv1.ListAuditRequest{GameId: game, Env: env, Actor: actor, FunctionId: fn, Action: action,
				PageSize: pageSize, PageToken: pageToken}
			var err error
			if req.FromMs, err = parseTimeFlag("--from", from); err != nil {
				return err
			}
			if req.ToMs, err = parseTimeFlag("--to", to); err != nil {
				return err
			}
			if since > 0 {
				if from != "" {
					return &exitError{code: exitCallFailed, err: errors.New("use --since or --from, not both")}
				}
				req.FromMs = time.Now().Add(-since).UnixMilli()
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewAuditServiceClient(conn).ListAudit(cmd.Context(), req)
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tACTOR\tACTION\tSCOPE\tRESULT\tMS\tPAYLOAD")
				for _, e := range resp.GetEntries() {
					payload, _ := json.Marshal(e.GetPayload().AsInterface())
					scope := "-"
					if e.GetGameId() != "" {
						scope = e.GetGameId() + "/" + e.GetEnv()
						if e.GetFunctionId() != "" {
							scope += "/" + e.GetFunctionId()
						}
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.GetId(), msTime(e.GetTsMs()), e.GetActor(), e.GetAction(),
						scope, e.GetResult(), e.GetDurationMs(), truncate(string(payload), 60))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return printNextPage(g.stdout, resp.GetNextPageToken())
			})
		},
	}
	f := list.Flags()
	f.StringVar(&game, "game", "", "filter by game")
	f.StringVar(&env, "env", "", "filter by environment")
	f.StringVar(&actor, "actor", "", `filter by actor, e.g. "operator:bob"`)
	f.StringVar(&fn, "function", "", "filter by function id")
	f.StringVar(&action, "action", "", "filter by action: invoke, job.start, job.cancel, approval.approve, login, user.create, role.grant, ...")
	f.StringVar(&from, "from", "", "rows at or after this time (RFC 3339)")
	f.StringVar(&to, "to", "", "rows before this time (RFC 3339)")
	f.DurationVar(&since, "since", 0, "rows of the last DURATION (e.g. 24h)")
	f.Int32Var(&pageSize, "page-size", 0, "rows per page (default 100, at most 1000)")
	f.StringVar(&pageToken, "page-token", "", "continue from a previous page")
	f.StringVarP(&output, "output", "o", "table", "output: table or json")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain and name the first row altered or removed",
		Long: `verify recomputes the audit log's hash chain on the server. Exit status: 0
when intact, 1 when a row was altered or removed (the first one is named), 2
when the call failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewAuditServiceClient(conn).VerifyAudit(cmd.Context(), &croupierv1.VerifyAuditRequest{})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					if err := printJSON(g.stdout, resp); err != nil {
						return err
					}
				} else if resp.GetOk() {
					fmt.Fprintf(g.stdout, "audit log intact: %d rows verified\n", resp.GetRowsChecked())
				}
				if !resp.GetOk() {
					return &exitError{code: exitAuditBroken, err: fmt.Errorf("audit log broken at row %d: %s (%d rows verified before it)",
						resp.GetFirstBadId(), resp.GetReason(), resp.GetRowsChecked())}
				}
				return nil
			})
		},
	}
	verify.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	cmd.AddCommand(list, verify)
	return cmd
}

func parseTimeFlag(name, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return 0, &exitError{code: exitCallFailed, err: fmt.Errorf("%s %q: use RFC 3339, e.g. 2030-01-02T15:04:05Z", name, v)}
	}
	return t.UnixMilli(), nil
}
