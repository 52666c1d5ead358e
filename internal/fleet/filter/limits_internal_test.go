package filter

import (
	"errors"
	"strings"
	"testing"
)

// With today's attribute names a comparison takes at least ~21 bytes, so
// MaxLength stops an expression (at ~195 comparisons) before MaxTerms can.
// The term limit still guards evaluation cost should MaxLength be raised;
// test it with the length limit lifted.
func TestTermLimit(t *testing.T) {
	lim := defaultLimits()
	lim.maxLength = 1 << 20
	const cmp = "playerSessionCount = 1"
	terms := func(n int) string { return strings.Repeat(cmp+" OR ", n-1) + cmp }

	if _, err := parse(terms(MaxTerms), lim); err != nil {
		t.Fatalf("%d terms: %v", MaxTerms, err)
	}
	_, err := parse(terms(MaxTerms+1), lim)
	var se *SyntaxError
	wantPos := MaxTerms * len(cmp+" OR ")
	if !errors.As(err, &se) || se.Pos != wantPos || se.Token != "playerSessionCount" || !strings.Contains(se.Msg, "more than 256 comparisons") {
		t.Fatalf("%d terms: %v", MaxTerms+1, err)
	}
	// Under the default limits the same expression is refused for length.
	if _, err := Parse(terms(MaxTerms)); err == nil || !strings.Contains(err.Error(), "the limit is 4096") {
		t.Fatalf("default limits: %v", err)
	}
}
