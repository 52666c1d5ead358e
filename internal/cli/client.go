package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Exit codes of client verbs.
const (
	exitFunctionFailed = 1 // the function ran and reported success=false
	exitCallFailed     = 2 // the platform refused or failed the call (gRPC status)
)

// callError turns a gRPC error into an exit error naming the status code.
func callError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return &exitError{code: exitCallFailed, err: err}
	}
	msg := st.Code().String() + ": " + st.Message()
	if info := apierr.Info(err); info != nil {
		msg += " [" + info.GetCode()
		keys := make([]string, 0, len(info.GetDetails()))
		for k := range info.GetDetails() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			msg += " " + k + "=" + info.GetDetails()[k]
		}
		msg += "]"
	}
	return &exitError{code: exitCallFailed, err: errors.New(msg)}
}

// withConn dials the profile's server and runs fn.
func (g *globals) withConn(fn func(conn *grpc.ClientConn) error) error {
	p, err := loadProfile(g.profile, g.logger())
	if err != nil {
		return &exitError{code: exitCallFailed, err: err}
	}
	conn, err := p.dial()
	if err != nil {
		return &exitError{code: exitCallFailed, err: err}
	}
	defer conn.Close()
	return fn(conn)
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protoJSON(m, protojson.MarshalOptions{UseProtoNames: true}, true)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// protoJSON encodes m with protojson and normalises the whitespace, which
// protojson deliberately varies between builds: scripts reading -o json
// get the same bytes from every croupier binary.
func protoJSON(m proto.Message, o protojson.MarshalOptions, indent bool) ([]byte, error) {
	raw, err := o.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if indent {
		err = json.Indent(&buf, raw, "", "  ")
	} else {
		err = json.Compact(&buf, raw)
	}
	return buf.Bytes(), err
}

// structJSON renders a Struct as JSON, indented for tables or compact for
// one-line event output.
func structJSON(s *structpb.Struct, indent bool) string {
	if s == nil {
		return "{}"
	}
	b, err := protoJSON(s, protojson.MarshalOptions{}, indent)
	if err != nil {
		return "{}"
	}
	return string(b)
}

func checkOutput(o string) error {
	if o != "json" && o != "table" {
		return &exitError{code: exitCallFailed, err: fmt.Errorf("-o %q: use json or table", o)}
	}
	return nil
}

func newInvokeCmd(g *globals) *cobra.Command {
	var (
		game, env, payload, route, target, hashKey, idemKey, output string
		timeout                                                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION_ID",
		Short: "Invoke a function and print its result",
		Long: `invoke calls a function registered by game servers and prints its result.
Exit status: 0 on success, 1 when the function reported a failure
(success=false), 2 when the platform refused or failed the call (the gRPC
status code name is printed).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pl := &structpb.Struct{}
			if err := pl.UnmarshalJSON([]byte(payload)); err != nil {
				return &exitError{code: exitCallFailed, err: fmt.Errorf("--payload must be a JSON object: %w", err)}
			}
			secs := int32(0)
			if timeout > 0 {
				secs = int32((timeout + time.Second - 1) / time.Second)
			}
			req := &croupierv1.InvokeFunctionRequest{GameId: game, Env: env, FunctionId: args[0], Payload: pl,
				Options: &croupierv1.InvokeOptions{RoutingMode: route, TargetAgent: target, HashKey: hashKey, IdempotencyKey: idemKey, Timeout: secs}}
			return g.withConn(func(conn *grpc.ClientConn) error {
				ctx := cmd.Context()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout+5*time.Second)
					defer cancel()
				}
				resp, err := croupierv1.NewFunctionServiceClient(conn).InvokeFunction(ctx, req)
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					if err := printJSON(g.stdout, resp); err != nil {
						return err
					}
				} else {
					printInvokeTable(g.stdout, resp)
				}
				if !resp.GetSuccess() {
					return &exitError{code: exitFunctionFailed, err: fmt.Errorf("function failed: %s: %s", resp.GetErrorCode(), resp.GetError())}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&game, "game", "", "game id (required)")
	f.StringVar(&env, "env", "", "environment (required)")
	f.StringVar(&payload, "payload", "{}", "payload as a JSON object")
	f.StringVar(&route, "route", "lb", "routing mode: lb, broadcast, targeted, hash")
	f.StringVar(&target, "target", "", "agent id or agent/instance for --route targeted")
	f.StringVar(&hashKey, "hash-key", "", "key for --route hash")
	f.StringVar(&idemKey, "idempotency-key", "", "idempotency key: a repeat returns the first result")
	f.DurationVar(&timeout, "timeout", 0, "call timeout (rounded up to whole seconds; default: the function's)")
	f.StringVarP(&output, "output", "o", "table", "output: table or json")
	_ = cmd.MarkFlagRequired("game")
	_ = cmd.MarkFlagRequired("env")
	return cmd
}

func printInvokeTable(w io.Writer, r *croupierv1.InvokeFunctionResponse) {
	if len(r.GetResults()) == 0 {
		if r.GetInstance() != "" { // none when nothing ran (e.g. APPROVAL_REQUIRED)
			fmt.Fprintf(w, "instance: %s\n", r.GetInstance())
		}
		if r.GetSuccess() {
			fmt.Fprintln(w, structJSON(r.GetResult(), true))
		} else {
			fmt.Fprintf(w, "FAILED %s: %s\n", r.GetErrorCode(), r.GetError())
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSUCCESS\tERROR\tRESULT")
	for _, res := range r.GetResults() {
		out, _ := json.Marshal(res.GetResult().AsMap())
		errText := ""
		if !res.GetSuccess() {
			errText = res.GetErrorCode() + ": " + res.GetError()
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", res.GetInstance(), res.GetSuccess(), errText, truncate(string(out), 80))
	}
	_ = tw.Flush()
	if !r.GetSuccess() {
		fmt.Fprintf(w, "%s: %s\n", r.GetErrorCode(), r.GetError())
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Inspect registered functions"}
	var game, env, fn, output string
	addFilter := func(c *cobra.Command) {
		c.Flags().StringVar(&game, "game", "", "filter by game")
		c.Flags().StringVar(&env, "env", "", "filter by environment")
		c.Flags().StringVar(&fn, "function", "", "filter by function id")
		c.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	}
	list := &cobra.Command{
		Use: "list", Short: "List function registrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewRegistryServiceClient(conn).GetRegistrations(cmd.Context(),
					&croupierv1.GetRegistrationsRequest{GameId: game, Env: env, FunctionId: fn})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GAME\tENV\tFUNCTION\tENABLED\tRISK\tINSTANCES")
				for _, r := range resp.GetRegistrations() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", r.GetGameId(), r.GetEnv(), r.GetFunctionId(), r.GetEnabled(),
						strings.TrimPrefix(r.GetDescriptor_().GetSemantics().GetRisk().String(), "RISK_LEVEL_"), instancesOf(r))
				}
				return tw.Flush()
			})
		},
	}
	addFilter(list)
	watch := &cobra.Command{
		Use: "watch", Short: "Follow registration changes (snapshot, then ADDED/UPDATED/REMOVED)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				stream, err := croupierv1.NewRegistryServiceClient(conn).WatchRegistrations(cmd.Context(),
					&croupierv1.WatchRegistrationsRequest{GameId: game, Env: env, FunctionId: fn})
				if err != nil {
					return callError(err)
				}
				for {
					ev, err := stream.Recv()
					if err != nil {
						if cmd.Context().Err() != nil || errors.Is(err, io.EOF) {
							return nil
						}
						return callError(err)
					}
					if output == "json" {
						b, _ := protoJSON(ev, protojson.MarshalOptions{UseProtoNames: true}, false)
						fmt.Fprintln(g.stdout, string(b))
						continue
					}
					r := ev.GetRegistration()
					if ev.GetType() == croupierv1.RegistrationEventType_SYNCED {
						fmt.Fprintln(g.stdout, "SYNCED")
						continue
					}
					fmt.Fprintf(g.stdout, "%-8s %s/%s %s %s\n", ev.GetType(), r.GetGameId(), r.GetEnv(), r.GetFunctionId(), instancesOf(r))
				}
			})
		},
	}
	addFilter(watch)
	cmd.AddCommand(list, watch)
	return cmd
}

func instancesOf(r *croupierv1.FunctionRegistration) string {
	var parts []string
	for _, a := range r.GetAgents() {
		for _, in := range a.GetInstances() {
			parts = append(parts, a.GetAgentId()+"/"+in)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func newAgentsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agents", Short: "Inspect connected agents"}
	var game, env, output string
	list := &cobra.Command{
		Use: "list", Short: "List connected agents", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewRegistryServiceClient(conn).ListAgents(cmd.Context(), &croupierv1.ListAgentsRequest{GameId: game, Env: env})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "AGENT\tGAME\tENV\tVERSION\tLAST HEARTBEAT\tINSTANCES")
				for _, a := range resp.GetAgents() {
					hb := time.UnixMilli(a.GetLastHeartbeat()).Format(time.RFC3339)
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.GetAgentId(), a.GetGameId(), a.GetEnv(), a.GetVersion(), hb, strings.Join(a.GetInstances(), ","))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&game, "game", "", "filter by game")
	list.Flags().StringVar(&env, "env", "", "filter by environment")
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")
	cmd.AddCommand(list)
	return cmd
}

func newFunctionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "function", Short: "Enable, disable or configure a function (assignments)"}
	var game, env string
	var config []string
	set := func(enabled bool) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			cfg := map[string]string{}
			for _, kv := range config {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return &exitError{code: exitCallFailed, err: fmt.Errorf("--config %q must be key=value", kv)}
				}
				cfg[k] = v
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewControlServiceClient(conn).UpdateAssignment(cmd.Context(), &croupierv1.UpdateAssignmentRequest{
					GameId: game, Env: env, FunctionId: args[0], Enabled: enabled, Config: cfg})
				if err != nil {
					return callError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "%s enabled=%v (assignments version %d)\n", args[0], enabled, resp.GetVersion())
				return err
			})
		}
	}
	enable := &cobra.Command{Use: "enable FUNCTION_ID", Short: "Enable a function", Args: cobra.ExactArgs(1), RunE: set(true)}
	disable := &cobra.Command{Use: "disable FUNCTION_ID", Short: "Disable a function (calls fail with FAILED_PRECONDITION)", Args: cobra.ExactArgs(1), RunE: set(false)}
	for _, c := range []*cobra.Command{enable, disable} {
		c.Flags().StringVar(&game, "game", "", "game id (required)")
		c.Flags().StringVar(&env, "env", "", "environment (required)")
		c.Flags().StringSliceVar(&config, "config", nil, "assignment config key=value (repeatable)")
		_ = c.MarkFlagRequired("game")
		_ = c.MarkFlagRequired("env")
	}
	cmd.AddCommand(enable, disable)
	return cmd
}
