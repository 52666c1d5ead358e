// Package rbac decides what an operator may do: permissions, scope patterns,
// built-in roles, and Check, which denies by default. It is pure: the
// principal carries its grants (resolved from role bindings by
// internal/auth), so a check needs no I/O.
package rbac

import (
	"fmt"
	"regexp"
	"strings"
)

// Permissions the platform checks. Custom roles may also hold permissions
// named in function descriptors (AuthConfig.permissions, e.g. "player:ban"),
// and wildcards: "*" (every permission) and "job:*" (every job permission).
const (
	FunctionInvoke   = "function:invoke"    // InvokeFunction
	FunctionRegister = "function:register"  // RegisterFunction, agent registration
	JobStart         = "job:start"          // InvokeJob
	JobCancel        = "job:cancel"         // CancelJob
	JobRead          = "job:read"           // GetJob, ListJobs, StreamJobEvents
	RegistryRead     = "registry:read"      // GetRegistrations, WatchRegistrations
	AgentRead        = "agent:read"         // ListAgents
	AssignmentWrite  = "assignment:write"   // UpdateAssignment
	AuditRead        = "audit:read"         // ListAudit, VerifyAudit
	ApprovalDecide   = "approval:decide"    // Approve, Reject
	UserAdmin        = "user:admin"         // UserService
	RoleAdmin        = "role:admin"         // RoleService, GrantRole, RevokeRole
	CertRevoke       = "certificate:revoke" // CertificateService
	FleetRead        = "fleet:read"         // FleetService: get, list, describe, search
	FleetWrite       = "fleet:write"        // FleetService: fleets, sessions, placements, player joins
)

// Known lists the platform's permissions in documentation order.
var Known = []string{
	FunctionInvoke, FunctionRegister, JobStart, JobCancel, JobRead, RegistryRead, AgentRead,
	AssignmentWrite, AuditRead, ApprovalDecide, UserAdmin, RoleAdmin, CertRevoke, FleetRead, FleetWrite,
}

var permissionRE = regexp.MustCompile(`^(\*|[a-z][a-z0-9_.-]{0,63}:(\*|[a-z][a-z0-9_.-]{0,63}))$`)

// ValidatePermission checks the syntax of a permission a role may hold:
// "resource:verb", "resource:*" or "*".
func ValidatePermission(p string) error {
	if !permissionRE.MatchString(p) {
		return fmt.Errorf("permission %q is malformed: use resource:verb in lower case (e.g. %s), resource:* or *", p, FunctionInvoke)
	}
	return nil
}

// permissionCovers reports whether the granted permission covers want.
func permissionCovers(granted, want string) bool {
	if granted == "*" || granted == want {
		return true
	}
	res, verb, ok := strings.Cut(granted, ":")
	return ok && verb == "*" && strings.HasPrefix(want, res+":")
}
