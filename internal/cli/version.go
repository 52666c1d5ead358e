package cli

import (
	"fmt"

	"github.com/croupier/croupier/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(g.stdout, "croupier", buildinfo.String())
			return err
		},
	}
}
