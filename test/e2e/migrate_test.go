package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrate runs `croupier migrate` twice on a fresh SQLite file (and on
// PostgreSQL when the suite has one): it applies the schema, then is a no-op.
func TestMigrate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		out, code := run(t, nil, "migrate", "--data-dir", dir)
		if code != 0 || !strings.Contains(out, "migrations applied (sqlite)") {
			t.Fatalf("migrate #%d: exit %d\n%s", i+1, code, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "croupier.db")); err != nil {
		t.Fatalf("no database file: %v", err)
	}
	out, code := run(t, nil, "migrate", "--store-driver", "postgres")
	if code == 0 || !strings.Contains(out, "store_dsn") {
		t.Fatalf("postgres without a DSN: exit %d\n%s", code, out)
	}
	if dsn := os.Getenv("CROUPIER_TEST_POSTGRES_DSN"); dsn != "" {
		for i := 0; i < 2; i++ {
			out, code := run(t, nil, "migrate", "--store-driver", "postgres", "--store-dsn", dsn)
			if code != 0 || !strings.Contains(out, "migrations applied (postgres)") {
				t.Fatalf("migrate postgres #%d: exit %d\n%s", i+1, code, out)
			}
		}
	}
}
