package sdk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKLinksNoStore: a game server built with the SDK does not link the
// server's store or its database drivers (the SDK reaches internal/apierr,
// which must stay apart from internal/store: internal/apierr/storeerr).
// modernc.org/sqlite registers the driver name "sqlite" at init, which
// panics in a game server that registers another driver of that name.
func TestSDKLinksNoStore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/croupier/croupier/internal/store", "modernc.org/sqlite", "github.com/jackc/pgx"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("the SDK links %s", dep)
			}
		}
	}
}
