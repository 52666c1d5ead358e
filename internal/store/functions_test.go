package store_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func descriptor(t *testing.T, id string) *croupierv1.FunctionDescriptor {
	t.Helper()
	schema, err := structpb.NewStruct(map[string]any{
		"type":       "object",
		"properties": map[string]any{"player_id": map[string]any{"type": "string"}},
		"required":   []any{"player_id"},
	})
	mustNil(t, err, "schema")
	return &croupierv1.FunctionDescriptor{
		Id: id, Name: "Ban " + id, Category: "player", ParamsSchema: schema,
		Auth:      &croupierv1.AuthConfig{Permissions: []string{"player:ban"}, RequireApproval: true, SensitiveFields: []string{"/reason"}},
		Semantics: &croupierv1.Semantics{Risk: croupierv1.RiskLevel_RISK_LEVEL_HIGH, TimeoutSeconds: 30},
		Ui:        &croupierv1.UIConfig{Widgets: map[string]string{"reason": "textarea"}},
		Version:   "1.0.0",
	}
}

func TestFunctions(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		fns := s.Functions()
		wantErr(t, fns.Put(ctx, "g", "prod", descriptor(t, "player.ban")), store.ErrNotFound, "put in undeclared scope")
		declare(t, s, "g", "prod")
		declare(t, s, "g", "dev")

		ban := descriptor(t, "player.ban")
		mustNil(t, fns.Put(ctx, "g", "prod", ban), "put ban")
		mustNil(t, fns.Put(ctx, "g", "prod", descriptor(t, "economy.grant")), "put grant")
		mustNil(t, fns.Put(ctx, "g", "dev", descriptor(t, "dev.only")), "put dev")

		got, err := fns.Get(ctx, "g", "prod", "player.ban")
		mustNil(t, err, "get")
		if !proto.Equal(got, ban) {
			t.Fatalf("Get returned %v, want %v", got, ban)
		}
		// Put replaces.
		ban.Description = "bans a player"
		mustNil(t, fns.Put(ctx, "g", "prod", ban), "replace")
		got, err = fns.Get(ctx, "g", "prod", "player.ban")
		mustNil(t, err, "get after replace")
		if got.GetDescription() != "bans a player" {
			t.Fatalf("replace not stored: %v", got)
		}

		list, err := fns.List(ctx, "g", "prod")
		mustNil(t, err, "list")
		if len(list) != 2 || list[0].GetId() != "economy.grant" || list[1].GetId() != "player.ban" {
			t.Fatalf("List(prod) = %v, want economy.grant, player.ban", list)
		}
		// Scopes never leak into each other.
		_, err = fns.Get(ctx, "g", "dev", "player.ban")
		wantErr(t, err, store.ErrNotFound, "get from other scope")

		mustNil(t, fns.Delete(ctx, "g", "prod", "player.ban"), "delete")
		wantErr(t, fns.Delete(ctx, "g", "prod", "player.ban"), store.ErrNotFound, "delete twice")
		_, err = fns.Get(ctx, "g", "prod", "player.ban")
		wantErr(t, err, store.ErrNotFound, "get deleted")

		wantErr(t, fns.Put(ctx, "g", "prod", &croupierv1.FunctionDescriptor{}), store.ErrInvalidArgument, "put without id")
		wantErr(t, fns.Put(ctx, "g", "prod", nil), store.ErrInvalidArgument, "put nil")
	})
}

func TestFunctionsMetacharacters(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		declare(t, s, "g", "e")
		for _, m := range metaStrings {
			mustNil(t, s.Functions().Put(ctx, "g", "e", &croupierv1.FunctionDescriptor{Id: m, Name: m}), "put")
		}
		for _, m := range metaStrings {
			got, err := s.Functions().Get(ctx, "g", "e", m)
			mustNil(t, err, "get "+m)
			if got.GetName() != m {
				t.Errorf("function %q has name %q", m, got.GetName())
			}
		}
		list, err := s.Functions().List(ctx, "g", "e")
		mustNil(t, err, "list")
		if len(list) != len(metaStrings) {
			t.Fatalf("List = %d functions, want %d", len(list), len(metaStrings))
		}
	})
}
