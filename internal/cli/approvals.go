package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

func newApprovalsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, approve or reject two-person approval requests",
		Long: `Calls to functions whose descriptor requires approval do not run when
invoked: they wait as approval requests. Another user holding approval:decide
on the function's scope approves (the call then starts as a job) or rejects
them; nobody decides on their own requests. Requests expire if nobody does.`,
	}
	var (
		status, game, env, pageToken, output string
		pageSize                             int32
	)
	list := &cobra.Command{
		Use: "list", Short: "List requests (yours, or all you may decide on)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewApprovalServiceClient(conn).ListApprovals(cmd.Context(), &croupierv1.ListApprovalsRequest{
					Status: status, GameId: game, Env: env, PageSize: pageSize, PageToken: pageToken})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tGAME\tENV\tFUNCTION\tREQUESTER\tEXPIRES\tDECIDED BY\tJOB")
				for _, a := range resp.GetApprovals() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetId(), a.GetStatus(), a.GetGameId(), a.GetEnv(),
						a.GetFunctionId(), a.GetRequester(), msTime(a.GetExpiresAtMs()), dash(a.GetDecidedBy()), dash(a.GetJobId()))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				return printNextPage(g.stdout, resp.GetNextPageToken())
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "filter: pending, approved, rejected, expired, executed, failed")
	list.Flags().StringVar(&game, "game", "", "filter by game (needed to see others' requests you may decide on)")
	list.Flags().StringVar(&env, "env", "", "filter by environment")
	list.Flags().Int32Var(&pageSize, "page-size", 0, "requests per page (default 50)")
	list.Flags().StringVar(&pageToken, "page-token", "", "continue from a previous page")
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")

	show := &cobra.Command{
		Use: "get ID", Short: "Show one request, its payload (sensitive fields masked) and outcome", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewApprovalServiceClient(conn).GetApproval(cmd.Context(), &croupierv1.GetApprovalRequest{Id: args[0]})
				if err != nil {
					return callError(err)
				}
				return printJSON(g.stdout, resp.GetApproval())
			})
		},
	}

	var note string
	approve := &cobra.Command{
		Use: "approve ID", Short: "Approve a request; the call starts as a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewApprovalServiceClient(conn).Approve(cmd.Context(), &croupierv1.ApproveRequest{Id: args[0], Comment: note})
				if err != nil {
					return callError(err)
				}
				a := resp.GetApproval()
				_, err = fmt.Fprintf(g.stdout, "approved %s: %s started as job %s (follow it with: croupier job watch %s)\n",
					a.GetId(), a.GetFunctionId(), a.GetJobId(), a.GetJobId())
				return err
			})
		},
	}
	approve.Flags().StringVar(&note, "comment", "", "comment recorded with the approval")
	reject := &cobra.Command{
		Use: "reject ID --reason TEXT", Short: "Reject a request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewApprovalServiceClient(conn).Reject(cmd.Context(), &croupierv1.RejectRequest{Id: args[0], Reason: note})
				if err != nil {
					return callError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "rejected %s\n", resp.GetApproval().GetId())
				return err
			})
		},
	}
	reject.Flags().StringVar(&note, "reason", "", "why (required)")
	_ = reject.MarkFlagRequired("reason")
	cmd.AddCommand(list, show, approve, reject)
	return cmd
}

func msTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printNextPage(w io.Writer, token string) error {
	if token == "" {
		return nil
	}
	_, err := fmt.Fprintf(w, "more: --page-token %s\n", token)
	return err
}
