package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// approvalFunctions answers as the server does for a function that needs
// two-person approval.
type approvalFunctions struct {
	croupierv1.UnimplementedFunctionServiceServer
}

func (approvalFunctions) InvokeFunction(context.Context, *croupierv1.InvokeFunctionRequest) (*croupierv1.InvokeFunctionResponse, error) {
	return &croupierv1.InvokeFunctionResponse{Success: false, ErrorCode: "APPROVAL_REQUIRED", ApprovalId: "apr_inv1",
		Error: "player.ban needs a second operator's approval: approval apr_inv1 is pending"}, nil
}

func (approvalFunctions) InvokeJob(context.Context, *croupierv1.InvokeJobRequest) (*croupierv1.InvokeJobResponse, error) {
	return &croupierv1.InvokeJobResponse{Success: false, Status: "awaiting_approval", ApprovalId: "apr_job1"}, nil
}

// Regression (issue 9, item 8): `job start` on an approval-gated function
// printed nothing and exited 0.
func TestJobStartAwaitingApproval(t *testing.T) {
	t.Parallel()
	gs := grpc.NewServer()
	croupierv1.RegisterFunctionServiceServer(gs, approvalFunctions{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	profile := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(profile, []byte("address: "+lis.Addr().String()+"\ninsecure: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		g := &globals{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, profile: profile}
		root := &cobra.Command{Use: "croupier", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(newJobCmd(g), newInvokeCmd(g))
		root.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	invokeOut, invokeErr := run("invoke", "player.ban", "--game", "g", "--env", "prod")
	if exitCode(invokeErr) != exitFunctionFailed {
		t.Fatalf("invoke awaiting approval: exit %d (%v), want %d", exitCode(invokeErr), invokeErr, exitFunctionFailed)
	}
	if strings.Contains(invokeOut, "instance:") || !strings.Contains(invokeOut, "APPROVAL_REQUIRED") {
		t.Errorf("invoke awaiting approval printed (no instance ran, so no instance line):\n%s", invokeOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "start", "player.ban", "--game", "g", "--env", "prod"}, "approval apr_job1 is pending"},
		{[]string{"job", "start", "player.ban", "--game", "g", "--env", "prod", "-o", "json"}, `"approval_id": "apr_job1"`},
		// --watch has no job to follow: it must not try.
		{[]string{"job", "start", "player.ban", "--game", "g", "--env", "prod", "--watch"}, "apr_job1"},
	} {
		out, err := run(tc.args...)
		if exitCode(err) != exitCode(invokeErr) || !strings.Contains(out, tc.want) || !strings.Contains(err.Error(), "apr_job1") {
			t.Errorf("croupier %s: exit %d (%v), want %d as invoke; output lacks %q?\n%s",
				strings.Join(tc.args, " "), exitCode(err), err, exitCode(invokeErr), tc.want, out)
		}
	}
}
