// Command commands is a test module of fleet job commands: "echo"
// returns its arguments and the state's value at /mode, "big" returns a
// string of args.n bytes, and "fail" fails with args.why.
package main

import (
	"errors"
	"strings"

	"github.com/tern-iot/tern/sdk"
)

type args struct {
	N   int    `json:"n"`
	Why string `json:"why"`
}

func init() {
	sdk.Module("commands", "1.0.0")
	sdk.Command("echo", func(c *sdk.Context) (any, error) {
		var a map[string]any
		if err := c.Target(&a); err != nil {
			return nil, err
		}
		mode, err := c.Read("/mode")
		if err != nil {
			return nil, err
		}
		var m any
		if mode.Exists() {
			if err := mode.Decode(&m); err != nil {
				return nil, err
			}
		}
		return map[string]any{"args": a, "mode": m}, nil
	})
	sdk.Command("big", func(c *sdk.Context) (any, error) {
		var a args
		if err := c.Target(&a); err != nil {
			return nil, err
		}
		return strings.Repeat("x", a.N), nil
	})
	sdk.Command("fail", func(c *sdk.Context) (any, error) {
		var a args
		if err := c.Target(&a); err != nil {
			return nil, err
		}
		return nil, errors.New(a.Why)
	})
}

// main is never called: the module is a reactor.
func main() {}
