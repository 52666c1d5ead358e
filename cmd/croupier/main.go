// Command croupier is the single binary of the Croupier game control plane.
package main

import (
	"os"

	"github.com/croupier/croupier/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
