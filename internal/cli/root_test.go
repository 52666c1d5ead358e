package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Regression: usage errors cobra finds (unknown flags and commands, wrong
// argument counts, missing required flags) exited 1, the code that means
// the function, job or audit chain failed. They exit 2 like the usage
// errors commands find themselves, and say where the usage is.
func TestMainUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	// A profile that names no reachable server: no case may get as far as
	// dialing one.
	profile := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(profile, []byte("address: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verify", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"job", "watch"}, "accepts 1 arg(s), received 0"},
		{[]string{"job", "get", "a", "b"}, "accepts 1 arg(s), received 2"},
		{[]string{"invoke", "player.get", "--game", "demo"}, `required flag(s) "env" not set`},
		{[]string{"approvals", "reject", "apr_1"}, `required flag(s) "reason" not set`},
		{[]string{"role", "grant", "bob", "admin"}, `required flag(s) "scope" not set`},
		{[]string{"job", "list", "--limit", "many"}, `invalid argument "many"`},
		{[]string{"registry", "list", "-o", "yaml"}, `-o "yaml"`},
	} {
		var out, errb bytes.Buffer
		code := Main(append(tc.args, "--profile", profile), strings.NewReader(""), &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("croupier %s: exit %d, stderr %q; want exit %d with %q", strings.Join(tc.args, " "), code, errb.String(), exitUsage, tc.want)
		}
	}
	var out, errb bytes.Buffer
	Main([]string{"audit", "verify", "--bogus"}, strings.NewReader(""), &out, &errb)
	if !strings.Contains(errb.String(), "Run 'croupier audit verify --help' for usage.") {
		t.Errorf("usage error without a pointer to the help: %q", errb.String())
	}
	// An error of a command that ran is not a usage error.
	errb.Reset()
	if code := Main([]string{"certs", "show", filepath.Join(t.TempDir(), "missing.crt")}, strings.NewReader(""), &out, &errb); code != 1 || strings.Contains(errb.String(), "for usage") {
		t.Errorf("certs show of a missing file: exit %d, stderr %q; want exit 1", code, errb.String())
	}
	if code := Main([]string{"version"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Errorf("croupier version: exit %d", code)
	}
}
