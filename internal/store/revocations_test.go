package store_test

import (
	"testing"

	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/store/storetest"
)

func TestRevocations(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := ctxT(t)
		rv := s.Revocations()
		list, err := rv.List(ctx)
		mustNil(t, err, "list empty")
		if len(list) != 0 {
			t.Fatalf("fresh list: %v", list)
		}
		mustNil(t, rv.Revoke(ctx, store.RevokedCertificate{Serial: "0a1b", Subject: "croupier://agent/a1?game=g&env=e", Reason: "stolen", RevokedBy: "operator:alice"}), "revoke")
		mustNil(t, rv.Revoke(ctx, store.RevokedCertificate{Serial: "0a1b", Subject: "x", Reason: "again"}), "revoke twice")
		mustNil(t, rv.Revoke(ctx, store.RevokedCertificate{Serial: "ff", Subject: "croupier://client/bob", Reason: "left"}), "revoke another")
		list, err = rv.List(ctx)
		mustNil(t, err, "list")
		if len(list) != 2 || list[0].Serial != "0a1b" || list[0].Reason != "stolen" || list[0].RevokedBy != "operator:alice" || list[0].RevokedAt.IsZero() {
			t.Fatalf("list: %+v", list)
		}
		if err := rv.Revoke(ctx, store.RevokedCertificate{}); err == nil {
			t.Fatal("empty serial accepted")
		}
	})
}
