package schema_test

import (
	"errors"
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/schema"
)

func TestValidateDescriptor(t *testing.T) {
	t.Parallel()
	valid := func() *croupierv1.FunctionDescriptor {
		return &croupierv1.FunctionDescriptor{
			Id:           "player.ban",
			ParamsSchema: mustStruct(t, `{"type":"object","properties":{"reason":{"type":"string"}}}`),
			Auth:         &croupierv1.AuthConfig{Permissions: []string{"player:ban", "job:*"}, SensitiveFields: []string{"/reason", "/a~1b"}},
			Semantics:    &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_HIGH, TimeoutSeconds: 30},
		}
	}
	if err := schema.ValidateDescriptor(valid()); err != nil {
		t.Fatalf("valid descriptor rejected: %v", err)
	}
	if err := schema.ValidateDescriptor(&croupierv1.FunctionDescriptor{Id: "x"}); err != nil {
		t.Fatalf("minimal descriptor rejected: %v", err)
	}

	tests := []struct {
		name    string
		mutate  func(d *croupierv1.FunctionDescriptor)
		field   string
		pointer string
		reason  string
	}{
		{"missing id", func(d *croupierv1.FunctionDescriptor) { d.Id = "" }, "id", "", "required"},
		{"id starts with digit", func(d *croupierv1.FunctionDescriptor) { d.Id = "1ban" }, "id", "", "start with a letter"},
		{"id with slash", func(d *croupierv1.FunctionDescriptor) { d.Id = "player/ban" }, "id", "", "only letters"},
		{"id too long", func(d *croupierv1.FunctionDescriptor) { d.Id = "a" + strings.Repeat("b", 128) }, "id", "", "128"},
		{"bad params schema", func(d *croupierv1.FunctionDescriptor) {
			d.ParamsSchema = mustStruct(t, `{"properties":{"n":{"type":"int"}}}`)
		}, "params_schema", "/properties/n/type", "must be one of"},
		{"remote result schema", func(d *croupierv1.FunctionDescriptor) {
			d.ResultSchema = mustStruct(t, `{"$ref":"https://example.com/r.json"}`)
		}, "result_schema", "/$ref", "remote references"},
		{"sensitive field without slash", func(d *croupierv1.FunctionDescriptor) {
			d.Auth.SensitiveFields = []string{"/ok", "reason"}
		}, "auth.sensitive_fields[1]", "", `did you mean "/reason"`},
		{"sensitive field bad escape", func(d *croupierv1.FunctionDescriptor) {
			d.Auth.SensitiveFields = []string{"/a~2"}
		}, "auth.sensitive_fields[0]", "", "'~'"},
		{"empty sensitive field", func(d *croupierv1.FunctionDescriptor) {
			d.Auth.SensitiveFields = []string{""}
		}, "auth.sensitive_fields[0]", "", "empty"},
		{"permission not lower case", func(d *croupierv1.FunctionDescriptor) {
			d.Auth.Permissions = []string{"player:ban", "Player:Ban"}
		}, "auth.permissions[1]", "", `permission "Player:Ban" is malformed: use resource:verb in lower case`},
		{"permission without verb", func(d *croupierv1.FunctionDescriptor) {
			d.Auth.Permissions = []string{"player"}
		}, "auth.permissions[0]", "", "malformed"},
		{"negative timeout", func(d *croupierv1.FunctionDescriptor) { d.Semantics.TimeoutSeconds = -1 }, "semantics.timeout_seconds", "", ">= 0"},
		{"unknown risk", func(d *croupierv1.FunctionDescriptor) { d.Semantics.Risk = 42 }, "semantics.risk", "", "unknown risk level 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := valid()
			tt.mutate(d)
			err := schema.ValidateDescriptor(d)
			var de *schema.DescriptorError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want *DescriptorError", err, err)
			}
			if de.Field != tt.field || de.SchemaPointer != tt.pointer || !strings.Contains(de.Reason, tt.reason) {
				t.Errorf("got {%q %q %q}, want {%q %q ~%q}", de.Field, de.SchemaPointer, de.Reason, tt.field, tt.pointer, tt.reason)
			}
			if !strings.HasPrefix(err.Error(), "descriptor."+tt.field) {
				t.Errorf("Error() = %q does not name the field", err.Error())
			}
		})
	}
	if err := schema.ValidateDescriptor(nil); err == nil {
		t.Error("nil descriptor accepted")
	}
}

func TestValidateFunctionID(t *testing.T) {
	t.Parallel()
	for id, ok := range map[string]bool{
		"a": true, "player.ban": true, "Economy_grant-gold.v2": true, "a" + strings.Repeat("9", 127): true,
		"": false, "_a": false, "9a": false, "a b": false, "a/b": false, "ä": false, "a" + strings.Repeat("9", 128): false,
	} {
		if err := schema.ValidateFunctionID(id); (err == nil) != ok {
			t.Errorf("ValidateFunctionID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func TestValidatePointer(t *testing.T) {
	t.Parallel()
	for p, ok := range map[string]bool{
		"/a": true, "/a/b/0": true, "/": true, "/a~0b~1c": true, "//": true,
		"": false, "a": false, "/a~": false, "/a~2": false, "/~x": false,
	} {
		if err := schema.ValidatePointer(p); (err == nil) != ok {
			t.Errorf("ValidatePointer(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}
