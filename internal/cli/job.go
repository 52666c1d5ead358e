package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Exit codes of `job watch` beyond exitFunctionFailed/exitCallFailed.
const exitJobCanceled = 3

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "job", Short: "Start, watch, cancel and list jobs (asynchronous invocations)"}
	cmd.AddCommand(newJobStartCmd(g), newJobWatchCmd(g), newJobCancelCmd(g), newJobGetCmd(g), newJobListCmd(g))
	return cmd
}

func newJobStartCmd(g *globals) *cobra.Command {
	var game, env, payload, route, target, hashKey, idemKey, output string
	var watch bool
	cmd := &cobra.Command{
		Use:   "start FUNCTION_ID",
		Short: "Start a job and print its id",
		Long: `start starts a job and prints its id. A function that needs two-person
approval does not start: start prints the approval id instead and exits 1, as
invoke does; the job starts once another operator approves. Exit status: 0 when
the job was started, 1 when it waits for approval, 2 when the platform refused
or failed the call.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pl := &structpb.Struct{}
			if err := pl.UnmarshalJSON([]byte(payload)); err != nil {
				return &exitError{code: exitCallFailed, err: fmt.Errorf("--payload must be a JSON object: %w", err)}
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewFunctionServiceClient(conn).InvokeJob(cmd.Context(), &croupierv1.InvokeJobRequest{
					GameId: game, Env: env, FunctionId: args[0], Payload: pl,
					Options: &croupierv1.InvokeOptions{RoutingMode: route, TargetAgent: target, HashKey: hashKey, IdempotencyKey: idemKey},
				})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					if err := printJSON(g.stdout, resp); err != nil {
						return err
					}
				} else if id := resp.GetApprovalId(); id != "" {
					fmt.Fprintf(g.stdout, "APPROVAL_REQUIRED: %s needs a second operator's approval: approval %s is pending; "+
						"it runs as a job once approved (croupier approvals get %s)\n", args[0], id, id)
				} else {
					fmt.Fprintln(g.stdout, resp.GetJobId())
				}
				if id := resp.GetApprovalId(); id != "" {
					// No job yet, so nothing to watch. Exit as invoke does
					// when the call waits for approval.
					return &exitError{code: exitFunctionFailed, err: fmt.Errorf("approval required: approval %s is pending", id)}
				}
				if watch {
					return watchJob(cmd, g, conn, resp.GetJobId(), 0, output)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&game, "game", "", "game id (required)")
	f.StringVar(&env, "env", "", "environment (required)")
	f.StringVar(&payload, "payload", "{}", "payload as a JSON object")
	f.StringVar(&route, "route", "lb", "routing mode: lb, targeted, hash")
	f.StringVar(&target, "target", "", "agent id or agent/instance for --route targeted")
	f.StringVar(&hashKey, "hash-key", "", "key for --route hash")
	f.StringVar(&idemKey, "idempotency-key", "", "idempotency key: a repeat returns the same job id")
	f.BoolVarP(&watch, "watch", "w", false, "watch the job after starting it")
	f.StringVarP(&output, "output", "o", "table", "output: table or json")
	_ = cmd.MarkFlagRequired("game")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func newJobWatchCmd(g *globals) *cobra.Command {
	var from int64
	var output string
	cmd := &cobra.Command{
		Use:   "watch JOB_ID",
		Short: "Print a job's events until it ends",
		Long: `watch replays a job's events from --from (default: the first) and follows
them live. On a terminal it draws a progress bar; with -o json it prints one
JSON object per event. Exit status: 0 when the job completed (DONE), 1 when it
failed (ERROR), 3 when it was cancelled, 2 when the call itself failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				return watchJob(cmd, g, conn, args[0], from, output)
			})
		},
	}
	cmd.Flags().Int64Var(&from, "from", 0, "first event seq to print (1 = the first event)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	return cmd
}

func watchJob(cmd *cobra.Command, g *globals, conn *grpc.ClientConn, id string, from int64, output string) error {
	stream, err := croupierv1.NewFunctionServiceClient(conn).StreamJobEvents(cmd.Context(), &croupierv1.StreamJobEventsRequest{JobId: id, FromSeq: from})
	if err != nil {
		return callError(err)
	}
	bar := output != "json" && isTerminal(g.stdout)
	var last *croupierv1.JobEvent
	expect := max(from, 1) // the seq after the last printed: a gap is events not stored
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if cmd.Context().Err() != nil {
				return nil
			}
			return callError(err)
		}
		last = ev
		if gap := ev.GetSeq() - expect; gap > 0 && output != "json" {
			if bar {
				fmt.Fprint(g.stdout, "\r\033[K")
			}
			fmt.Fprintf(g.stdout, "… %d event(s) not stored: the job went over its event budget (docs/jobs.md)\n", gap)
		}
		expect = ev.GetSeq() + 1
		switch {
		case output == "json":
			b, _ := protoJSON(ev, protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}, false)
			fmt.Fprintln(g.stdout, string(b))
		case bar && ev.GetType() == croupierv1.EventType_PROGRESS:
			fmt.Fprintf(g.stdout, "\r%s %3.0f%% %-50.50s", progressBar(ev.GetProgress(), 30), ev.GetProgress()*100, ev.GetMessage())
		default:
			if bar {
				fmt.Fprint(g.stdout, "\r\033[K")
			}
			fmt.Fprintln(g.stdout, eventLine(ev))
		}
	}
	if last == nil {
		// Nothing at or after --from: the job's status says how it ended.
		return jobStatusExit(cmd, conn, id)
	}
	switch last.GetType() {
	case croupierv1.EventType_DONE:
		return nil
	case croupierv1.EventType_CANCELED:
		return &exitError{code: exitJobCanceled, err: fmt.Errorf("job %s was cancelled: %s", id, last.GetMessage())}
	case croupierv1.EventType_ERROR:
		return &exitError{code: exitFunctionFailed, err: fmt.Errorf("job %s failed: %s", id, last.GetMessage())}
	}
	return &exitError{code: exitCallFailed, err: fmt.Errorf("job %s: stream ended before the job did", id)}
}

// jobStatusExit ends a watch that printed no event (--from past the job's
// last event) as a watch of the whole job would have: by the job's status.
func jobStatusExit(cmd *cobra.Command, conn *grpc.ClientConn, id string) error {
	resp, err := croupierv1.NewFunctionServiceClient(conn).GetJob(cmd.Context(), &croupierv1.GetJobRequest{JobId: id})
	if err != nil {
		return callError(err)
	}
	j := resp.GetJob()
	switch j.GetStatus() {
	case "completed":
		return nil
	case "canceled":
		return &exitError{code: exitJobCanceled, err: fmt.Errorf("job %s was cancelled: %s", id, j.GetError())}
	case "failed":
		return &exitError{code: exitFunctionFailed, err: fmt.Errorf("job %s failed: %s", id, j.GetError())}
	}
	return &exitError{code: exitCallFailed, err: fmt.Errorf("job %s: stream ended without events while the job is %s", id, j.GetStatus())}
}

func eventLine(ev *croupierv1.JobEvent) string {
	ts := time.UnixMilli(ev.GetTimestamp()).Format("15:04:05.000")
	line := fmt.Sprintf("%s #%d %-8s", ts, ev.GetSeq(), ev.GetType())
	if ev.GetType() == croupierv1.EventType_PROGRESS {
		line += fmt.Sprintf(" %3.0f%%", ev.GetProgress()*100)
	}
	if ev.GetMessage() != "" {
		line += " " + ev.GetMessage()
	}
	if ev.GetData() != nil && len(ev.GetData().GetFields()) > 0 {
		line += " " + structJSON(ev.GetData(), false)
	}
	return line
}

func progressBar(f float64, width int) string {
	n := int(f*float64(width) + 0.5)
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newJobCancelCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use: "cancel JOB_ID", Short: "Cancel a running job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewFunctionServiceClient(conn).CancelJob(cmd.Context(), &croupierv1.CancelJobRequest{JobId: args[0], Reason: reason})
				if err != nil {
					return callError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "%s %s\n", args[0], resp.GetStatus())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the job is cancelled (shown in its CANCELED event)")
	return cmd
}

func newJobGetCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use: "get JOB_ID", Short: "Show a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewFunctionServiceClient(conn).GetJob(cmd.Context(), &croupierv1.GetJobRequest{JobId: args[0]})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp.GetJob())
				}
				return printJobs(g.stdout, []*croupierv1.Job{resp.GetJob()})
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	return cmd
}

func newJobListCmd(g *globals) *cobra.Command {
	var game, env, fn, st, output, pageToken string
	var since time.Duration
	var limit int32
	cmd := &cobra.Command{
		Use: "list", Short: "List jobs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			req := &croupierv1.ListJobsRequest{GameId: game, Env: env, FunctionId: fn, Status: st, PageSize: limit, PageToken: pageToken}
			if since > 0 {
				req.CreatedAfter = time.Now().Add(-since).UnixMilli()
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewFunctionServiceClient(conn).ListJobs(cmd.Context(), req)
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				if err := printJobs(g.stdout, resp.GetJobs()); err != nil {
					return err
				}
				if resp.GetNextPageToken() != "" {
					fmt.Fprintf(g.stdout, "more: --page-token %s\n", resp.GetNextPageToken())
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&game, "game", "", "filter by game")
	f.StringVar(&env, "env", "", "filter by environment")
	f.StringVar(&fn, "function", "", "filter by function id")
	f.StringVar(&st, "status", "", "filter by status: pending, running, completed, failed, canceled")
	f.DurationVar(&since, "since", 0, "only jobs created within this duration")
	f.Int32Var(&limit, "limit", 50, "page size")
	f.StringVar(&pageToken, "page-token", "", "continue a previous listing")
	f.StringVarP(&output, "output", "o", "table", "output: table or json")
	return cmd
}

func printJobs(w io.Writer, jobs []*croupierv1.Job) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tFUNCTION\tSCOPE\tSTATUS\tPROGRESS\tINSTANCE\tCREATED\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%3.0f%%\t%s\t%s\t%s\n", j.GetJobId(), j.GetFunctionId(), j.GetGameId(), j.GetEnv(),
			j.GetStatus(), j.GetProgress()*100, j.GetInstance(), time.UnixMilli(j.GetCreatedAt()).Format(time.RFC3339),
			truncate(j.GetError(), 60))
	}
	return tw.Flush()
}
