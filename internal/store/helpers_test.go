package store_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/store"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock(start time.Time) *fakeClock {
	c := &fakeClock{}
	c.ms.Store(start.UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// metaStrings are values full of SQL metacharacters; stored and matched
// verbatim, they prove queries are parameterised.
var metaStrings = []string{
	`x'; DROP TABLE jobs; --`,
	`%`,
	`_`,
	`a\b`,
	`"quoted"`,
	`$1`,
	`?`,
	"uni\u00e7\u00f8de \U0001F3B2",
}

func mustNil(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

// wantErr checks errors.Is(err, target) and that the message carries no SQL.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	assertNoSQL(t, err)
}

func assertNoSQL(t *testing.T, err error) {
	t.Helper()
	msg := strings.ToUpper(err.Error())
	for _, kw := range []string{"SELECT ", "INSERT ", "UPDATE ", "DELETE ", " WHERE ", "CONSTRAINT", "DUPLICATE KEY"} {
		if strings.Contains(msg, kw) {
			t.Fatalf("error message leaks SQL or driver text (%q): %s", kw, err)
		}
	}
}

// ctxT is a context bounded well under the test timeout, so a hung database
// fails one test with a clear message instead of stalling the run.
func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// declare declares a scope or fails the test.
func declare(t *testing.T, s *store.Store, game, env string) {
	t.Helper()
	mustNil(t, s.Scopes().Declare(ctxT(t), game, env), "declare scope")
}
