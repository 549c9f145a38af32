// Command tern is the tern operator CLI. See internal/cli.
package main

import (
	"os"

	"github.com/tern-iot/tern/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
