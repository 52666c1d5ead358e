package rbac

import (
	"fmt"
	"regexp"
	"slices"
)

// Built-in role names.
const (
	AdminRole    = "admin"
	OperatorRole = "operator"
	ViewerRole   = "viewer"
	ApproverRole = "approver"
	AuditorRole  = "auditor"
	// FleetAdminRole holds fleet:write, which decides what agents execute
	// (a fleet's launch path and parameters): kept out of operator.
	FleetAdminRole = "fleet-admin"
)

// BuiltinRole is a role defined in code; custom roles live in the database.
type BuiltinRole struct {
	Name        string
	Permissions []string
	Description string
}

var builtins = []BuiltinRole{
	{AdminRole, []string{"*"}, "every permission; granted on * it includes user and role administration"},
	{OperatorRole, []string{FunctionInvoke, JobStart, JobCancel, JobRead, RegistryRead, AgentRead, FleetRead}, "invoke functions and run jobs, read the registry, agents and fleets"},
	{FleetAdminRole, []string{FleetRead, FleetWrite, AgentRead}, "create, change and delete fleets (what agents launch), sessions, placements and player joins"},
	{ViewerRole, []string{JobRead, RegistryRead, AgentRead, FleetRead}, "read-only: jobs, registry, agents, fleets"},
	{ApproverRole, []string{ApprovalDecide, JobRead, RegistryRead}, "approve or reject other people's requests"},
	{AuditorRole, []string{AuditRead, JobRead}, "read and verify the audit log"},
}

// Builtins returns the built-in roles (a copy).
func Builtins() []BuiltinRole {
	out := make([]BuiltinRole, len(builtins))
	for i, r := range builtins {
		r.Permissions = slices.Clone(r.Permissions)
		out[i] = r
	}
	return out
}

// Builtin returns the built-in role named name.
func Builtin(name string) (BuiltinRole, bool) {
	for _, r := range builtins {
		if r.Name == name {
			r.Permissions = slices.Clone(r.Permissions)
			return r, true
		}
	}
	return BuiltinRole{}, false
}

var roleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)

// ValidateRoleName checks the syntax of a custom role's name.
func ValidateRoleName(name string) error {
	if !roleNameRE.MatchString(name) {
		return fmt.Errorf("role name %q is malformed: 1-64 lower-case letters, digits, '_', '.', '-', starting with a letter", name)
	}
	return nil
}
