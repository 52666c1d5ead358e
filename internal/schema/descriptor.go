package schema

import (
	"errors"
	"fmt"
	"strings"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/rbac"
)

// maxFunctionIDLen bounds FunctionDescriptor.id; see validFunctionID.
const maxFunctionIDLen = 128

// DescriptorError says which descriptor field is wrong and why. Field is a
// proto field path such as "params_schema" or "auth.sensitive_fields[1]";
// SchemaPointer is set when the problem is inside a schema.
type DescriptorError struct {
	Field         string
	SchemaPointer string
	Reason        string
}

func (e *DescriptorError) Error() string {
	if e.SchemaPointer != "" {
		return fmt.Sprintf("descriptor.%s: invalid schema at %q: %s", e.Field, e.SchemaPointer, e.Reason)
	}
	return fmt.Sprintf("descriptor.%s: %s", e.Field, e.Reason)
}

// ValidateDescriptor checks what the server relies on: a well-formed id,
// schemas that compile (without remote references), well-formed
// auth.permissions, JSON pointers in auth.sensitive_fields, and sane
// semantics. It returns the first problem
// as a *DescriptorError.
func ValidateDescriptor(d *croupierv1.FunctionDescriptor) error {
	if d == nil {
		return &DescriptorError{Field: "", Reason: "descriptor is required"}
	}
	if err := ValidateFunctionID(d.GetId()); err != nil {
		return &DescriptorError{Field: "id", Reason: err.Error()}
	}
	for _, f := range []struct {
		name string
		src  func() error
	}{
		{"params_schema", func() error { _, err := Compile(d.GetParamsSchema()); return err }},
		{"result_schema", func() error { _, err := Compile(d.GetResultSchema()); return err }},
	} {
		if err := f.src(); err != nil {
			var ce *CompileError
			if errors.As(err, &ce) {
				return &DescriptorError{Field: f.name, SchemaPointer: ce.Pointer, Reason: ce.Reason}
			}
			return &DescriptorError{Field: f.name, Reason: err.Error()}
		}
	}
	for i, p := range d.GetAuth().GetPermissions() {
		// The form roles are held to (rbac.ValidatePermission): a required
		// permission no role can hold, such as "Player:Ban", would leave the
		// function callable only by holders of "*".
		if err := rbac.ValidatePermission(p); err != nil {
			return &DescriptorError{Field: fmt.Sprintf("auth.permissions[%d]", i), Reason: err.Error()}
		}
	}
	for i, p := range d.GetAuth().GetSensitiveFields() {
		if err := ValidatePointer(p); err != nil {
			return &DescriptorError{Field: fmt.Sprintf("auth.sensitive_fields[%d]", i), Reason: err.Error()}
		}
	}
	if s := d.GetSemantics(); s != nil {
		if s.GetTimeoutSeconds() < 0 {
			return &DescriptorError{Field: "semantics.timeout_seconds", Reason: fmt.Sprintf("must be >= 0 (0 = server default), got %d", s.GetTimeoutSeconds())}
		}
		if _, known := croupierv1.RiskLevel_name[int32(s.GetRisk())]; !known {
			return &DescriptorError{Field: "semantics.risk", Reason: fmt.Sprintf("unknown risk level %d", s.GetRisk())}
		}
	}
	return nil
}

// ValidateFunctionID checks id against the documented function id shape.
func ValidateFunctionID(id string) error {
	if id == "" {
		return errors.New("function id is required")
	}
	if !validFunctionID(id) {
		return fmt.Errorf("function id %q must start with a letter and contain only letters, digits, '.', '_' or '-' (at most 128 characters)", id)
	}
	return nil
}

// validFunctionID matches ^[a-zA-Z][a-zA-Z0-9_.-]{0,127}$ by hand: it runs
// on every registration and invocation and needs no regexp machinery.
func validFunctionID(id string) bool {
	if len(id) == 0 || len(id) > maxFunctionIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 {
			if !letter {
				return false
			}
			continue
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// ValidatePointer checks that p is a JSON pointer (RFC 6901) naming a
// field: "/a/b", with "~0" and "~1" as the only escapes. The empty pointer
// (the whole document) is refused: as a sensitive field it would mask the
// entire payload, which is almost always an SDK sending an unset string.
func ValidatePointer(p string) error {
	if p == "" {
		return errors.New(`empty JSON pointer; name a field such as "/password"`)
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("JSON pointer %q must start with '/' (did you mean %q?)", p, "/"+p)
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '~' {
			continue
		}
		if i+1 >= len(p) || (p[i+1] != '0' && p[i+1] != '1') {
			return fmt.Errorf("JSON pointer %q has a '~' at byte %d not followed by '0' or '1' (write '~0' for '~', '~1' for '/')", p, i)
		}
	}
	return nil
}
