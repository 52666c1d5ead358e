package schema

import (
	"errors"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// errRemoteRef is what a compile gets when a schema refers outside itself.
var errRemoteRef = errors.New("remote references are not allowed; put the referenced schema under \"$defs\" in the same document")

// denyLoader refuses every URL. The library's default loader reads local
// files, and an HTTP loader would let a game server make the control plane
// fetch arbitrary URLs; the built-in meta-schemas are resolved before any
// loader is consulted, so denying everything loses nothing legitimate.
type denyLoader struct{}

var _ jsonschema.URLLoader = denyLoader{}

func (denyLoader) Load(string) (any, error) { return nil, errRemoteRef }
