package control

import (
	"context"
	"fmt"
	"log/slog"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/registry"
	"github.com/croupier/croupier/internal/schema"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc/codes"
)

// Catalog handles functions registered directly with RegisterFunction: they
// are persisted and put in the registry, so they survive restarts.
type Catalog struct {
	store  FunctionStore
	reg    *registry.Registry
	scopes *Scopes
}

// FunctionStore persists registered descriptors.
type FunctionStore interface {
	Put(ctx context.Context, game, env string, d *croupierv1.FunctionDescriptor) error
}

// NewCatalog returns the catalog over st, putting descriptors in reg.
func NewCatalog(st FunctionStore, reg *registry.Registry, scopes *Scopes) *Catalog {
	return &Catalog{store: st, reg: reg, scopes: scopes}
}

// Register declares d in game/env.
func (c *Catalog) Register(ctx context.Context, game, env string, d *croupierv1.FunctionDescriptor) error {
	if game == "" || env == "" || d == nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "game_id, env and descriptor are required")
	}
	if len(c.reg.Instances(game, env, d.GetId())) > 0 {
		// The game servers that serve it own its descriptor (its auth rules
		// included); an operator must not be able to replace them.
		return apierr.New(codes.FailedPrecondition, apierr.CodeFunctionServed,
			fmt.Sprintf("function %s is served by game servers, whose descriptor applies; RegisterFunction only declares functions nobody serves yet", d.GetId()),
			"function_id", d.GetId())
	}
	if ok, err := c.scopes.Declared(ctx, game, env); err != nil {
		return err
	} else if !ok {
		return apierr.New(codes.NotFound, apierr.CodeUnknownScope, fmt.Sprintf("scope %s/%s is not declared", game, env))
	}
	if err := schema.ValidateDescriptor(d); err != nil {
		return apierr.New(codes.InvalidArgument, apierr.CodeInvalidDescriptor,
			fmt.Sprintf("descriptor %q: %v", d.GetId(), err), "function_id", d.GetId())
	}
	if err := c.store.Put(ctx, game, env, d); err != nil {
		return err
	}
	return c.reg.PutDescriptor(game, env, d)
}

// LoadCatalog puts the functions registered with RegisterFunction and the
// assignments of every declared scope into reg (at server start). A stored
// descriptor the registry refuses is skipped and logged.
func LoadCatalog(ctx context.Context, st *store.Store, reg *registry.Registry, log *slog.Logger) error {
	scopes, err := st.Scopes().List(ctx)
	if err != nil {
		return fmt.Errorf("load scopes: %w", err)
	}
	for _, sc := range scopes {
		descs, err := st.Functions().List(ctx, sc.GameID, sc.Env)
		if err != nil {
			return fmt.Errorf("load registered functions of %s/%s: %w", sc.GameID, sc.Env, err)
		}
		for _, d := range descs {
			if err := reg.PutDescriptor(sc.GameID, sc.Env, d); err != nil {
				log.Warn("skipping stored descriptor", "game", sc.GameID, "env", sc.Env, "function", d.GetId(), "err", err)
			}
		}
		list, _, err := st.Assignments().List(ctx, sc.GameID, sc.Env)
		if err != nil {
			return fmt.Errorf("load assignments of %s/%s: %w", sc.GameID, sc.Env, err)
		}
		for _, as := range list {
			reg.SetEnabled(sc.GameID, sc.Env, as.GetFunctionId(), as.GetEnabled())
		}
	}
	return nil
}
