package filter

import (
	"cmp"
	"math"
	"strconv"
)

// number is a numeric literal or a property value read as a number. Integers
// stay int64 so that millisecond timestamps and counts compare exactly;
// anything with a fraction or exponent, or beyond int64, is a float64.
type number struct {
	isInt bool
	i     int64
	f     float64
}

func intNumber(i int64) number { return number{isInt: true, i: i} }

// compare orders two numbers exactly, also across int64 and float64 (a
// plain float64 conversion would equate 2^53 and 2^53+1).
func (n number) compare(m number) int {
	switch {
	case n.isInt && m.isInt:
		return cmp.Compare(n.i, m.i)
	case n.isInt:
		return compareIntFloat(n.i, m.f)
	case m.isInt:
		return -compareIntFloat(m.i, n.f)
	}
	return cmp.Compare(n.f, m.f)
}

// compareIntFloat compares i with a finite f without rounding i.
func compareIntFloat(i int64, f float64) int {
	const twoTo63 = 9223372036854775808.0
	switch {
	case f >= twoTo63:
		return -1
	case f < -twoTo63:
		return 1
	}
	t := math.Trunc(f)
	if ti := int64(t); i != ti { // exact: t is integral and in range
		return cmp.Compare(i, ti)
	}
	return cmp.Compare(0, f-t)
}

// scanNumber returns the end of the number that starts at s[start], or
// start if there is none. Grammar: -?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?
// It is deliberately narrower than strconv.ParseFloat: no "Inf", "NaN",
// hex, underscores or leading '+', so property values like "nan" or "0x10"
// stay strings.
func scanNumber(s string, start int) int {
	i := start
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	if !digits() {
		return start
	}
	if i+1 < len(s) && s[i] == '.' && s[i+1] >= '0' && s[i+1] <= '9' {
		i++
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		save := i
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			i = save
		}
	}
	return i
}

// parseNumber reads s as a number if all of s follows the grammar of
// scanNumber and the value is finite.
func parseNumber(s string) (number, bool) {
	if s == "" || scanNumber(s, 0) != len(s) {
		return number{}, false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return intNumber(i), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return number{}, false
	}
	return number{f: f}, true
}
