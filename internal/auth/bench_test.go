package auth_test

import (
	"testing"

	"github.com/croupier/croupier/internal/auth"
	"github.com/croupier/croupier/internal/store/storetest"
)

// BenchmarkHashDefault is the cost of one login's password check with the
// production parameters.
func BenchmarkHashDefault(b *testing.B) {
	h, err := auth.HashPassword("benchmark-password", auth.DefaultArgon2)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := auth.VerifyPassword("benchmark-password", h); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkAuthenticate is the per-request cost of a bearer token on SQLite:
// JWT verification, the session/user read and the grants read.
func BenchmarkAuthenticate(b *testing.B) {
	s := storetest.SQLite(b)
	svc, err := auth.New(b.Context(), auth.Config{Store: s, Argon2: cheapArgon})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.Bootstrap(b.Context(), "root", "root-password"); err != nil {
		b.Fatal(err)
	}
	toks, err := svc.Login(b.Context(), "root", "root-password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := svc.Authenticate(b.Context(), toks.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
