package rbac

import (
	"fmt"
	"strings"
)

// Scope is a pattern over resources game/env/function. Each part is "*"
// (anything) or a value; the function part may also end in "*" to match a
// prefix ("player.*").
type Scope struct {
	Game, Env, Function string
}

// All is the scope that covers everything.
var All = Scope{Game: "*", Env: "*", Function: "*"}

var scopeKeys = [3]string{"game", "env", "function"}

// ParseScope parses a scope pattern. Examples:
//
//	"*"                                  everything
//	"game:demo/*" or "game:demo"         every env and function of game demo
//	"game:demo/env:prod/*"               every function of demo/prod
//	"game:*/env:prod/function:player.*"  functions named player.* in every game's prod
//	"game:demo/env:prod/function:player.ban"
//
// Parts come in the order game, env, function; a "*" part ends the pattern
// and stands for all remaining parts, as does leaving them out.
func ParseScope(s string) (Scope, error) {
	if s == "" {
		return Scope{}, fmt.Errorf("empty scope: use * or game:<g>/env:<e>/function:<f>")
	}
	sc := All
	parts := strings.Split(s, "/")
	if len(parts) > 3 {
		return Scope{}, fmt.Errorf("scope %q has %d parts; at most game:<g>/env:<e>/function:<f>", s, len(parts))
	}
	vals := [3]*string{&sc.Game, &sc.Env, &sc.Function}
	for i, part := range parts {
		if part == "*" {
			if i != len(parts)-1 {
				return Scope{}, fmt.Errorf("scope %q: a bare * must be the last part", s)
			}
			break
		}
		key, val, ok := strings.Cut(part, ":")
		if !ok || key != scopeKeys[i] {
			return Scope{}, fmt.Errorf("scope %q: part %d must be %s:<value> (parts are game, env, function in that order)", s, i+1, scopeKeys[i])
		}
		if err := checkScopeValue(scopeKeys[i], val); err != nil {
			return Scope{}, fmt.Errorf("scope %q: %w", s, err)
		}
		*vals[i] = val
	}
	return sc, nil
}

func checkScopeValue(key, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s must not be empty (use * for any)", key)
	case v == "*":
		return nil
	case strings.ContainsAny(v, " \t\r\n"):
		return fmt.Errorf("%s %q contains white space", key, v)
	case key == "function" && strings.Count(v, "*") == 1 && strings.HasSuffix(v, "*"):
		return nil
	case strings.Contains(v, "*"):
		if key == "function" {
			return fmt.Errorf("function %q: * may only end a function pattern (player.*)", v)
		}
		return fmt.Errorf("%s %q: use * alone for any %s", key, v, key)
	}
	return nil
}

// String is the canonical form: trailing wildcard parts collapse into "/*",
// and the scope of everything is "*".
func (s Scope) String() string {
	switch {
	case s.Game == "*" && s.Env == "*" && s.Function == "*":
		return "*"
	case s.Env == "*" && s.Function == "*":
		return "game:" + s.Game + "/*"
	case s.Function == "*":
		return "game:" + s.Game + "/env:" + s.Env + "/*"
	}
	return "game:" + s.Game + "/env:" + s.Env + "/function:" + s.Function
}

// CanonicalScope parses s and returns its canonical form.
func CanonicalScope(s string) (string, error) {
	sc, err := ParseScope(s)
	if err != nil {
		return "", err
	}
	return sc.String(), nil
}

// Covers reports whether the pattern covers the resource game/env/fn. An
// empty resource part stands for "the whole level" (a check on a game/env
// rather than one function, or a global one), which only a "*" part covers:
// a grant on one function does not cover its whole environment.
func (s Scope) Covers(game, env, fn string) bool {
	return partCovers(s.Game, game) && partCovers(s.Env, env) && partCovers(s.Function, fn)
}

func partCovers(pattern, v string) bool {
	switch {
	case pattern == "*":
		return true
	case v == "":
		return false
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(v, pattern[:len(pattern)-1])
	}
	return pattern == v
}

// Resource names a checked resource in messages: game:g/env:e/function:f,
// shortened when the check is on a whole env (game:g/env:e), a whole game
// (game:g) or everything (*).
func Resource(game, env, fn string) string {
	switch {
	case game == "":
		return "*"
	case env == "":
		return "game:" + game
	case fn == "":
		return "game:" + game + "/env:" + env
	}
	return "game:" + game + "/env:" + env + "/function:" + fn
}
