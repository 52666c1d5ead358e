package auth

import (
	"context"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr/storeerr"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/ratelimit"
	"github.com/croupier/croupier/internal/store"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// AuthServer implements croupierv1.AuthServiceServer.
type AuthServer struct {
	croupierv1.UnimplementedAuthServiceServer
	svc *Service
}

// NewAuthServer returns the gRPC (and REST) face of the login API.
func NewAuthServer(s *Service) *AuthServer { return &AuthServer{svc: s} }

func tokensProto(t Tokens) (access, refresh string, expiresIn int64, typ string) {
	return t.AccessToken, t.RefreshToken, int64(t.ExpiresIn.Seconds()), t.TokenType
}

// Login implements AuthService.Login.
func (a *AuthServer) Login(ctx context.Context, req *croupierv1.LoginRequest) (*croupierv1.LoginResponse, error) {
	t, err := a.svc.Login(ctx, req.GetUsername(), req.GetPassword())
	if err != nil {
		setRetryAfter(ctx, err)
		return nil, storeerr.ToStatus(ctx, a.svc.log, err)
	}
	resp := &croupierv1.LoginResponse{}
	resp.AccessToken, resp.RefreshToken, resp.ExpiresIn, resp.TokenType = tokensProto(t)
	return resp, nil
}

// setRetryAfter sends a throttled password check's retry-after also as
// metadata, for clients that do not read ErrorInfo; the REST edge turns
// the same error into a Retry-After header.
func setRetryAfter(ctx context.Context, err error) {
	if v, ok := ratelimit.RetryAfterHeader(err); ok {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", v))
	}
}

// Refresh implements AuthService.Refresh.
func (a *AuthServer) Refresh(ctx context.Context, req *croupierv1.RefreshRequest) (*croupierv1.RefreshResponse, error) {
	t, err := a.svc.Refresh(ctx, req.GetRefreshToken())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, a.svc.log, err)
	}
	resp := &croupierv1.RefreshResponse{}
	resp.AccessToken, resp.RefreshToken, resp.ExpiresIn, resp.TokenType = tokensProto(t)
	return resp, nil
}

// Logout implements AuthService.Logout.
func (a *AuthServer) Logout(ctx context.Context, req *croupierv1.LogoutRequest) (*croupierv1.LogoutResponse, error) {
	if err := a.svc.Logout(ctx, req.GetRefreshToken()); err != nil {
		return nil, storeerr.ToStatus(ctx, a.svc.log, err)
	}
	return &croupierv1.LogoutResponse{}, nil
}

// WhoAmI implements AuthService.WhoAmI.
func (a *AuthServer) WhoAmI(ctx context.Context, _ *croupierv1.WhoAmIRequest) (*croupierv1.WhoAmIResponse, error) {
	p := principal.FromContext(ctx)
	resp := &croupierv1.WhoAmIResponse{Kind: string(p.Kind), Name: p.Name}
	for _, g := range p.Grants {
		resp.Roles = append(resp.Roles, &croupierv1.RoleBinding{Role: g.Role, Scope: g.Scope})
	}
	return resp, nil
}

// UserServer implements croupierv1.UserServiceServer.
type UserServer struct {
	croupierv1.UnimplementedUserServiceServer
	svc *Service
}

// NewUserServer returns the gRPC (and REST) face of user administration.
func NewUserServer(s *Service) *UserServer { return &UserServer{svc: s} }

// CreateUser implements UserService.CreateUser.
func (u *UserServer) CreateUser(ctx context.Context, req *croupierv1.CreateUserRequest) (*croupierv1.CreateUserResponse, error) {
	if err := u.svc.CreateUser(ctx, principal.FromContext(ctx), req.GetUsername(), req.GetPassword()); err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	got, err := u.svc.store.Users().Get(ctx, req.GetUsername())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.CreateUserResponse{User: userProto(UserInfo{Username: got.Username, Disabled: got.Disabled,
		CreatedAt: got.CreatedAt, UpdatedAt: got.UpdatedAt})}, nil
}

// SetPassword implements UserService.SetPassword.
func (u *UserServer) SetPassword(ctx context.Context, req *croupierv1.SetPasswordRequest) (*croupierv1.SetPasswordResponse, error) {
	if err := u.svc.SetPassword(ctx, principal.FromContext(ctx), req.GetUsername(), req.GetPassword(), req.GetCurrentPassword()); err != nil {
		setRetryAfter(ctx, err)
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.SetPasswordResponse{}, nil
}

// DisableUser implements UserService.DisableUser.
func (u *UserServer) DisableUser(ctx context.Context, req *croupierv1.DisableUserRequest) (*croupierv1.DisableUserResponse, error) {
	if err := u.svc.SetDisabled(ctx, principal.FromContext(ctx), req.GetUsername(), true); err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.DisableUserResponse{}, nil
}

// EnableUser implements UserService.EnableUser.
func (u *UserServer) EnableUser(ctx context.Context, req *croupierv1.EnableUserRequest) (*croupierv1.EnableUserResponse, error) {
	if err := u.svc.SetDisabled(ctx, principal.FromContext(ctx), req.GetUsername(), false); err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.EnableUserResponse{}, nil
}

// ListUsers implements UserService.ListUsers.
func (u *UserServer) ListUsers(ctx context.Context, _ *croupierv1.ListUsersRequest) (*croupierv1.ListUsersResponse, error) {
	users, err := u.svc.ListUsers(ctx, principal.FromContext(ctx))
	if err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	resp := &croupierv1.ListUsersResponse{Users: make([]*croupierv1.User, 0, len(users))}
	for _, x := range users {
		resp.Users = append(resp.Users, userProto(x))
	}
	return resp, nil
}

// GrantRole implements UserService.GrantRole.
func (u *UserServer) GrantRole(ctx context.Context, req *croupierv1.GrantRoleRequest) (*croupierv1.GrantRoleResponse, error) {
	scope, err := u.svc.GrantRole(ctx, principal.FromContext(ctx), req.GetUsername(), req.GetRole(), req.GetScope())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.GrantRoleResponse{Binding: &croupierv1.RoleBinding{Role: req.GetRole(), Scope: scope}}, nil
}

// RevokeRole implements UserService.RevokeRole.
func (u *UserServer) RevokeRole(ctx context.Context, req *croupierv1.RevokeRoleRequest) (*croupierv1.RevokeRoleResponse, error) {
	if err := u.svc.RevokeRole(ctx, principal.FromContext(ctx), req.GetUsername(), req.GetRole(), req.GetScope()); err != nil {
		return nil, storeerr.ToStatus(ctx, u.svc.log, err)
	}
	return &croupierv1.RevokeRoleResponse{}, nil
}

func userProto(u UserInfo) *croupierv1.User {
	out := &croupierv1.User{Username: u.Username, Disabled: u.Disabled, CreatedAtMs: u.CreatedAt.UnixMilli(), UpdatedAtMs: u.UpdatedAt.UnixMilli()}
	for _, b := range u.Roles {
		out.Roles = append(out.Roles, bindingProto(b))
	}
	return out
}

func bindingProto(b store.RoleBinding) *croupierv1.RoleBinding {
	return &croupierv1.RoleBinding{Role: b.Role, Scope: b.Scope}
}

// RoleServer implements croupierv1.RoleServiceServer.
type RoleServer struct {
	croupierv1.UnimplementedRoleServiceServer
	svc *Service
}

// NewRoleServer returns the gRPC (and REST) face of role administration.
func NewRoleServer(s *Service) *RoleServer { return &RoleServer{svc: s} }

// CreateRole implements RoleService.CreateRole.
func (r *RoleServer) CreateRole(ctx context.Context, req *croupierv1.CreateRoleRequest) (*croupierv1.CreateRoleResponse, error) {
	info, err := r.svc.CreateRole(ctx, principal.FromContext(ctx), req.GetName(), req.GetPermissions(), req.GetDescription())
	if err != nil {
		return nil, storeerr.ToStatus(ctx, r.svc.log, err)
	}
	return &croupierv1.CreateRoleResponse{Role: roleProto(info)}, nil
}

// DeleteRole implements RoleService.DeleteRole.
func (r *RoleServer) DeleteRole(ctx context.Context, req *croupierv1.DeleteRoleRequest) (*croupierv1.DeleteRoleResponse, error) {
	if err := r.svc.DeleteRole(ctx, principal.FromContext(ctx), req.GetName()); err != nil {
		return nil, storeerr.ToStatus(ctx, r.svc.log, err)
	}
	return &croupierv1.DeleteRoleResponse{}, nil
}

// ListRoles implements RoleService.ListRoles.
func (r *RoleServer) ListRoles(ctx context.Context, _ *croupierv1.ListRolesRequest) (*croupierv1.ListRolesResponse, error) {
	roles, err := r.svc.ListRoles(ctx)
	if err != nil {
		return nil, storeerr.ToStatus(ctx, r.svc.log, err)
	}
	resp := &croupierv1.ListRolesResponse{Roles: make([]*croupierv1.Role, 0, len(roles))}
	for _, x := range roles {
		resp.Roles = append(resp.Roles, roleProto(x))
	}
	return resp, nil
}

func roleProto(r RoleInfo) *croupierv1.Role {
	return &croupierv1.Role{Name: r.Name, Permissions: r.Permissions, Description: r.Description, Builtin: r.Builtin}
}
