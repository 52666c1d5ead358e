package fieldlimit

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestCheckLimits(t *testing.T) {
	long := strings.Repeat("x", MaxIDBytes+1)
	payload, _ := structpb.NewStruct(map[string]any{"note": strings.Repeat("free text ", 100)})
	for _, tc := range []struct {
		name  string
		req   proto.Message
		field string // "" = accepted
	}{
		{"ids at the limit", &croupierv1.InvokeFunctionRequest{GameId: long[:MaxIDBytes], Env: "prod", FunctionId: "player.ban"}, ""},
		{"payload is not an id", &croupierv1.InvokeFunctionRequest{GameId: "demo", Payload: payload}, ""},
		{"long game_id", &croupierv1.InvokeFunctionRequest{GameId: long}, "game_id"},
		{"space in an id", &croupierv1.InvokeFunctionRequest{FunctionId: "player ban"}, "function_id"},
		{"control char in a name", &croupierv1.CreateRoleRequest{Name: "gm\x00"}, "name"},
		{"nested idempotency key", &croupierv1.InvokeFunctionRequest{Options: &croupierv1.InvokeOptions{IdempotencyKey: long}}, "options.idempotency_key"},
		{"repeated ids", &croupierv1.CreateRoleRequest{Name: "gm", Permissions: []string{"function:invoke", long}}, "permissions[1]"},
		{"label key", &croupierv1.GetAgentFleetsRequest{Labels: map[string]string{long: "v"}}, "labels key"},
		{"label value", &croupierv1.GetAgentFleetsRequest{Labels: map[string]string{"k": strings.Repeat("v", maxLabelValueBytes+1)}}, "labels[k]"},
		{"selector key", &croupierv1.Fleet{AgentSelector: map[string]string{long: "v"}}, "agent_selector key"},
		{"invalid UTF-8", &croupierv1.InvokeFunctionRequest{GameId: "\xff"}, "game_id"},
		{"bidi override in an id", &croupierv1.InvokeFunctionRequest{Env: "dev\u202eprod"}, "env"},
		{"zero-width space in an id", &croupierv1.InvokeFunctionRequest{GameId: "de\u200bmo"}, "game_id"},
		{"bidi override in a name", &croupierv1.CreateRoleRequest{Name: "gm\u202egnp.exe"}, "name"},
		{"non-ASCII names and ids pass", &croupierv1.CreateRoleRequest{Name: "游戏管理员 👩\u200d💻", Permissions: []string{"函数:调用"}}, ""},
		{"credentials are not ids", &croupierv1.RefreshRequest{RefreshToken: strings.Repeat("t", 2000)}, ""},
	} {
		err := Check(tc.req, nil)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		info := apierr.Info(err)
		if info.GetCode() != apierr.CodeFieldLimit || info.GetDetails()["field"] != tc.field {
			t.Errorf("%s: got %v (details %v), want %s on %s", tc.name, err, info.GetDetails(), apierr.CodeFieldLimit, tc.field)
		}
		if len(info.GetMessage()) > 200 {
			t.Errorf("%s: message is %d bytes: %q", tc.name, len(info.GetMessage()), info.GetMessage())
		}
	}
	if err := Check(&croupierv1.UpdateAssignmentRequest{GameId: long}, map[string]int{"game_id": 256}); err != nil {
		t.Errorf("override: %v", err)
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	if got := Truncate("ééé", 3); got != "é…" {
		t.Fatalf("Truncate: %q", got)
	}
	if got := Truncate("abc", 3); got != "abc" {
		t.Fatalf("Truncate: %q", got)
	}
}

// TestCheckStringASCII holds checkString's shortcut for printable ASCII to
// the rule it shortcuts, for every ASCII character in an id and in a name.
func TestCheckStringASCII(t *testing.T) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		s := "a" + string(r) + "b"
		for _, k := range []fieldKind{fieldID, fieldName} {
			want := unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
				k == fieldID && (unicode.IsSpace(r) || unicode.Is(unicode.Cf, r))
			if got := checkString("f", s, k, MaxIDBytes) != nil; got != want {
				t.Errorf("kind %d, %q: refused %v, want %v", k, s, got, want)
			}
		}
	}
}

// BenchmarkCheck is the edge's check of an InvokeFunctionRequest as
// bench/invoke sends it (three ids, a payload, no options).
func BenchmarkCheck(b *testing.B) {
	payload, _ := structpb.NewStruct(map[string]any{"player_id": "p42"})
	req := &croupierv1.InvokeFunctionRequest{GameId: "demo", Env: "dev", FunctionId: "player.get", Payload: payload}
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(req, nil); err != nil {
			b.Fatal(err)
		}
	}
}
