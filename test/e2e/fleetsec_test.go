package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// TestFleetLaunchPathRefused is the attack of issue 9 defect 1: `fleet
// create --launch-path /bin/sh --param -c --param 'id > FILE'`. An operator
// lacks fleet:write (it belongs to fleet-admin); an administrator has it,
// but /bin/sh is outside the build directories the agents reported. No
// fleet is created and FILE never appears.
func TestFleetLaunchPathRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	users := croupierv1.NewUserServiceClient(c.conn)
	ctx := context.Background()
	if _, err := users.CreateUser(ctx, &croupierv1.CreateUserRequest{Username: "opdemo", Password: "opdemo-password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.GrantRole(ctx, &croupierv1.GrantRoleRequest{Username: "opdemo", Role: "operator", Scope: "game:demo/*"}); err != nil {
		t.Fatal(err)
	}
	opProfile := filepath.Join(c.dir, "opdemo.yaml")
	writeFile(t, opProfile, "address: "+c.grpc+"\nca: certs/ca.crt\nserver_name: localhost\n")
	operator := []string{"CROUPIER_PROFILE=" + opProfile}
	if out, code := runIn(t, operator, "opdemo-password\n", "login", "-u", "opdemo", "--password-stdin"); code != 0 {
		t.Fatalf("login: %s", out)
	}
	admin := []string{"CROUPIER_PROFILE=" + c.profile} // the client certificate's user, admin on *

	proof := filepath.Join(t.TempDir(), "ran")
	attack := []string{"fleet", "create", "--game", "demo", "--env", "dev", "--name", "evil",
		"--launch-path", "/bin/sh", "--param", "-c", "--param", "id > " + proof}

	out, code := run(t, operator, attack...)
	if code == 0 || !strings.Contains(out, "PERMISSION_DENIED") || !strings.Contains(out, "fleet:write") {
		t.Fatalf("operator fleet create /bin/sh: exit %d, want PERMISSION_DENIED naming fleet:write:\n%s", code, out)
	}
	out, code = run(t, admin, attack...)
	if code == 0 || !strings.Contains(out, "LAUNCH_PATH_NOT_ALLOWED") || !strings.Contains(out, filepath.Dir(bins.gsegame)) {
		t.Fatalf("admin fleet create /bin/sh: exit %d, want LAUNCH_PATH_NOT_ALLOWED naming the build directory:\n%s", code, out)
	}
	// A relative name (found on PATH by a naive exec) is refused as well.
	out, code = run(t, admin, "fleet", "create", "--game", "demo", "--env", "dev", "--name", "evil", "--launch-path", "sh", "--param", "-c", "--param", "id > "+proof)
	if code == 0 || !strings.Contains(out, "INVALID_ARGUMENT") || !strings.Contains(out, "must be absolute") {
		t.Fatalf("admin fleet create sh: exit %d:\n%s", code, out)
	}

	fl, err := croupierv1.NewFleetServiceClient(c.conn).ListFleets(ctx, &croupierv1.ListFleetsRequest{GameId: "demo", Env: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fl.GetFleets()) != 0 {
		t.Fatalf("fleets were created: %v", fl.GetFleets())
	}
	if _, err := os.Stat(proof); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists: the shell ran (%v)", proof, err)
	}
}
