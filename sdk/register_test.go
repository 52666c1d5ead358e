package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/types/known/structpb"
)

func noop(context.Context, *sdk.Invocation) (*structpb.Struct, error) { return &structpb.Struct{}, nil }

func noopJob(context.Context, *sdk.Job) (*structpb.Struct, error) { return &structpb.Struct{}, nil }

func TestRegisterRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		desc *croupierv1.FunctionDescriptor
		want []string
	}{
		{"empty id", &croupierv1.FunctionDescriptor{}, []string{"function id is required"}},
		{"id starting with a digit", &croupierv1.FunctionDescriptor{Id: "1player"}, []string{`"1player"`, "must start with a letter"}},
		{"id with a space", &croupierv1.FunctionDescriptor{Id: "player get"}, []string{"must start with a letter and contain only"}},
		{"id too long", &croupierv1.FunctionDescriptor{Id: "p" + strings.Repeat("x", 128)}, []string{"at most 128"}},
		{"schema with a bad type", &croupierv1.FunctionDescriptor{Id: "player.get",
			ParamsSchema: sdk.MustSchema(`{"type":"object","properties":{"count":{"type":"integr"}}}`)},
			[]string{`descriptor "player.get"`, "params_schema", "/properties/count"}},
		{"result schema with a remote ref", &croupierv1.FunctionDescriptor{Id: "player.get",
			ResultSchema: sdk.MustSchema(`{"$ref":"https://example.com/player.json"}`)},
			[]string{"result_schema", "example.com"}},
		{"bad sensitive field pointer", &croupierv1.FunctionDescriptor{Id: "player.get",
			Auth: &croupierv1.AuthConfig{SensitiveFields: []string{"password"}}}, []string{"auth.sensitive_fields[0]"}},
		{"negative timeout", &croupierv1.FunctionDescriptor{Id: "player.get",
			Semantics: &croupierv1.Semantics{TimeoutSeconds: -5}}, []string{"semantics.timeout_seconds", "got -5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := sdk.New(sdk.Options{InstanceID: "gs-1"})
			for _, reg := range []func() error{
				func() error { return c.Register(tt.desc, noop) },
				func() error { return c.RegisterJob(tt.desc, noopJob) },
			} {
				err := reg()
				if err == nil {
					t.Fatal("registration accepted")
				}
				if !strings.HasPrefix(err.Error(), "sdk: ") {
					t.Errorf("error %q does not say it comes from the SDK", err)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			}
		})
	}
}

func TestRegisterDuplicatesAndNil(t *testing.T) {
	t.Parallel()
	c := sdk.New(sdk.Options{InstanceID: "gs-1"})
	d := &croupierv1.FunctionDescriptor{Id: "player.get"}
	if err := c.Register(d, nil); err == nil || !strings.Contains(err.Error(), "nil handler for player.get") {
		t.Fatalf("nil handler: %v", err)
	}
	if err := c.RegisterJob(d, nil); err == nil || !strings.Contains(err.Error(), "nil job handler") {
		t.Fatalf("nil job handler: %v", err)
	}
	if err := c.Register(d, noop); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	for _, err := range []error{c.Register(d, noop), c.RegisterJob(d, noopJob)} {
		if err == nil || !strings.Contains(err.Error(), `"player.get" registered twice`) {
			t.Fatalf("duplicate: %v", err)
		}
	}
}

func TestRegisterAfterServe(t *testing.T) {
	t.Parallel()
	c := sdk.New(sdk.Options{InstanceID: "gs-1", AgentAddr: "127.0.0.1:1", Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Serve starts serving, then returns at once
	if err := c.Serve(ctx); err != nil {
		t.Fatalf("Serve with an ended context = %v, want nil", err)
	}
	err := c.Register(&croupierv1.FunctionDescriptor{Id: "player.get"}, noop)
	if err == nil || !strings.Contains(err.Error(), "before Serve") {
		t.Fatalf("Register after Serve = %v", err)
	}
	if err := c.Serve(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Serve = %v", err)
	}
}

// TestNewDefaults reads the environment, so it is not parallel.
func TestNewDefaults(t *testing.T) {
	t.Setenv("CROUPIER_INSTANCE_ID", "")
	host, _ := os.Hostname()
	if got, want := sdk.New(sdk.Options{}).InstanceID(), fmt.Sprintf("%s-%d", host, os.Getpid()); got != want {
		t.Fatalf("default instance id %q, want %q", got, want)
	}
	t.Setenv("CROUPIER_INSTANCE_ID", "from-env")
	if got := sdk.New(sdk.Options{}).InstanceID(); got != "from-env" {
		t.Fatalf("instance id %q, want from-env", got)
	}
	if got := sdk.New(sdk.Options{InstanceID: "explicit"}).InstanceID(); got != "explicit" {
		t.Fatalf("instance id %q, want explicit", got)
	}
}

func TestErrorf(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", sdk.Errorf("PLAYER_NOT_FOUND", "no player %q", "p9"))
	var fe *sdk.Error
	if !errors.As(err, &fe) || fe.Code != "PLAYER_NOT_FOUND" || fe.Message != `no player "p9"` {
		t.Fatalf("errors.As = %+v", fe)
	}
	if fe.Error() != `PLAYER_NOT_FOUND: no player "p9"` {
		t.Fatalf("Error() = %q", fe.Error())
	}
}

func TestMustSchemaPanicsOnBadJSON(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "sdk.MustSchema") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	sdk.MustSchema(`{"type":`)
}
