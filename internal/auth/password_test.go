package auth_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/croupier/croupier/internal/auth"
)

// cheapArgon keeps tests fast; production uses auth.DefaultArgon2.
var cheapArgon = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := auth.HashPassword("correct horse", cheapArgon)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := auth.HashPassword("correct horse", cheapArgon)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct hors": false, "": false, "Correct horse": false} {
		ok, err := auth.VerifyPassword(pw, h)
		if err != nil || ok != want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// The default parameters verify too (one real-cost hash).
	hd, err := auth.HashPassword("pw-default-cost", auth.DefaultArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := auth.VerifyPassword("pw-default-cost", hd); !ok || err != nil {
		t.Fatalf("default params: %v, %v", ok, err)
	}
	if _, err := auth.HashPassword("x", auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32}); err == nil {
		t.Fatal("weak parameters accepted")
	}
}

func TestVerifyPasswordRejectsMalformedHashes(t *testing.T) {
	t.Parallel()
	good, _ := auth.HashPassword("pw", cheapArgon)
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for name, h := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":        "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"old version":    "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"bad params":     "$argon2id$v=19$m=x,t=1,p=1$" + salt + "$" + key,
		"trailing param": "$argon2id$v=19$m=64,t=1,p=1x$" + salt + "$" + key,
		"huge memory":    "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,
		"huge time":      "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key,
		"zero threads":   "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"bad salt":       "$argon2id$v=19$m=64,t=1,p=1$!!$" + key,
		"empty key":      "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"extra part":     good + "$x",
	} {
		if ok, err := auth.VerifyPassword("pw", h); err == nil || ok {
			t.Errorf("%s: VerifyPassword accepted %q (%v, %v)", name, h, ok, err)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	if err := auth.CheckPassword("1234567"); err == nil {
		t.Error("7-character password accepted")
	}
	if err := auth.CheckPassword(strings.Repeat("x", auth.MaxPasswordLen+1)); err == nil {
		t.Error("oversized password accepted")
	}
	if err := auth.CheckPassword("12345678"); err != nil {
		t.Error(err)
	}
}
