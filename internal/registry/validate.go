package registry

import (
	"fmt"
	"strings"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// validateAgent checks the structure the registry relies on. Descriptor
// contents (schemas, pointers) are the caller's to validate, with
// schema.ValidateDescriptor, before Upsert.
func validateAgent(a *Agent) error {
	switch {
	case a.ID == "":
		return fmt.Errorf("%w: agent id is required", ErrInvalid)
	case strings.Contains(a.ID, "/"):
		// "agent/instance" keys must split unambiguously.
		return fmt.Errorf("%w: agent id %q must not contain '/'", ErrInvalid, a.ID)
	case a.GameID == "" || a.Env == "":
		return fmt.Errorf("%w: agent %q: game id and env are required", ErrInvalid, a.ID)
	}
	seen := make(map[string]bool, len(a.Instances))
	for i, in := range a.Instances {
		switch {
		case in.ID == "":
			return fmt.Errorf("%w: agent %q: instance %d has no id", ErrInvalid, a.ID, i)
		case strings.Contains(in.ID, "/"):
			return fmt.Errorf("%w: agent %q: instance id %q must not contain '/'", ErrInvalid, a.ID, in.ID)
		case seen[in.ID]:
			return fmt.Errorf("%w: agent %q: instance id %q appears twice", ErrInvalid, a.ID, in.ID)
		}
		seen[in.ID] = true
		for _, fn := range in.Functions {
			if fn == "" {
				return fmt.Errorf("%w: agent %q: instance %q lists an empty function id", ErrInvalid, a.ID, in.ID)
			}
		}
	}
	ids := make(map[string]bool, len(a.Descriptors))
	for i, d := range a.Descriptors {
		switch {
		case d == nil || d.GetId() == "":
			return fmt.Errorf("%w: agent %q: descriptor %d has no id", ErrInvalid, a.ID, i)
		case ids[d.GetId()]:
			return fmt.Errorf("%w: agent %q: two descriptors for function %q", ErrInvalid, a.ID, d.GetId())
		}
		ids[d.GetId()] = true
	}
	return nil
}

func validateDirect(game, env string, d *croupierv1.FunctionDescriptor) error {
	if game == "" || env == "" {
		return fmt.Errorf("%w: game id and env are required", ErrInvalid)
	}
	if d.GetId() == "" {
		return fmt.Errorf("%w: descriptor id is required", ErrInvalid)
	}
	return nil
}
