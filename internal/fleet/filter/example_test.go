package filter_test

import (
	"fmt"

	"github.com/croupier/croupier/internal/fleet/filter"
)

func ExampleParse() {
	e, err := filter.Parse("hasAvailablePlayerSessions = true AND (gameServerSessionProperties.mode = 'brawl' OR gameServerSessionProperties.level >= 10)")
	if err != nil {
		panic(err)
	}
	s := filter.Session{HasAvailable: true, Properties: map[string]string{"mode": "solo", "level": "12"}}
	fmt.Println(e.Match(s))
	// Output: true
}

func ExampleSyntaxError() {
	_, err := filter.Parse("playerSessionCount >> 2")
	fmt.Println(err)
	// Output:
	// filter: unexpected token ">>" at offset 19: expected a comparison operator (=, <>, <, <=, >, >=)
	//   playerSessionCount >> 2
	//                      ^^
}
