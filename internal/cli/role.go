package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

func newRoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "role",
		Short: "Manage roles and role grants",
		Long: `role manages custom roles (role:admin on *) and grants roles to users on
scopes (role:admin on that scope). A scope is "*", "game:G/*",
"game:G/env:E/*" or "game:G/env:E/function:F", with * for any part and a
trailing * for a function prefix ("function:player.*"). grant and revoke
need --scope: there is no default, so granting everything takes an explicit
--scope '*'. Built-in roles: admin, operator, fleet-admin, viewer, approver,
auditor (croupier role list).`,
	}
	var (
		perms       []string
		description string
	)
	create := &cobra.Command{
		Use: "create NAME --permission PERM...", Short: "Create a custom role", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewRoleServiceClient(conn).CreateRole(cmd.Context(),
					&croupierv1.CreateRoleRequest{Name: args[0], Permissions: perms, Description: description})
				if err != nil {
					return callError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "role %s created: %s\n", resp.GetRole().GetName(), strings.Join(resp.GetRole().GetPermissions(), ","))
				return err
			})
		},
	}
	create.Flags().StringSliceVarP(&perms, "permission", "p", nil, "permission (repeatable or comma-separated), e.g. function:invoke, player:ban, job:*")
	create.Flags().StringVar(&description, "description", "", "what the role is for")
	_ = create.MarkFlagRequired("permission")

	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a custom role nobody holds", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				if _, err := croupierv1.NewRoleServiceClient(conn).DeleteRole(cmd.Context(), &croupierv1.DeleteRoleRequest{Name: args[0]}); err != nil {
					return callError(err)
				}
				_, err := fmt.Fprintf(g.stdout, "role %s deleted\n", args[0])
				return err
			})
		},
	}

	var output string
	list := &cobra.Command{
		Use: "list", Short: "List built-in and custom roles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewRoleServiceClient(conn).ListRoles(cmd.Context(), &croupierv1.ListRolesRequest{})
				if err != nil {
					return callError(err)
				}
				if output == "json" {
					return printJSON(g.stdout, resp)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ROLE\tBUILT-IN\tPERMISSIONS\tDESCRIPTION")
				for _, r := range resp.GetRoles() {
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", r.GetName(), r.GetBuiltin(), strings.Join(r.GetPermissions(), ","), r.GetDescription())
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "output: table or json")

	var scope string
	grant := &cobra.Command{
		Use: "grant USERNAME ROLE --scope SCOPE", Short: "Grant a role to a user on a scope", Args: cobra.ExactArgs(2),
		Example: "  croupier role grant bob operator --scope 'game:demo/*'\n  croupier role grant carol admin --scope '*'",
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				resp, err := croupierv1.NewUserServiceClient(conn).GrantRole(cmd.Context(),
					&croupierv1.GrantRoleRequest{Username: args[0], Role: args[1], Scope: scope})
				if err != nil {
					return callError(err)
				}
				_, err = fmt.Fprintf(g.stdout, "granted %s to %s on %s\n", args[1], args[0], resp.GetBinding().GetScope())
				return err
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke USERNAME ROLE --scope SCOPE", Short: "Revoke a role grant", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withConn(func(conn *grpc.ClientConn) error {
				if _, err := croupierv1.NewUserServiceClient(conn).RevokeRole(cmd.Context(),
					&croupierv1.RevokeRoleRequest{Username: args[0], Role: args[1], Scope: scope}); err != nil {
					return callError(err)
				}
				_, err := fmt.Fprintf(g.stdout, "revoked %s from %s on %s\n", args[1], args[0], scope)
				return err
			})
		},
	}
	for _, c := range []*cobra.Command{grant, revoke} {
		c.Flags().StringVar(&scope, "scope", "", `scope (required): "game:G/*", "game:G/env:E/*", "game:G/env:E/function:F", or "*" for everything`)
		_ = c.MarkFlagRequired("scope")
	}
	cmd.AddCommand(create, del, list, grant, revoke)
	return cmd
}
