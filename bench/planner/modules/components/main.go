// Command components is the benchmark's 50-component, 200-job domain
// (PROBLEMS.md, components-50): each component is downloaded, installed
// and started by jobs of its own.
package main

import (
	"fmt"

	"github.com/tern-iot/tern/sdk"
)

func init() {
	sdk.Module("bench-components", "1.0.0")
	for k := range 50 {
		path := fmt.Sprintf("/components/c%02d/state", k)
		for _, s := range []struct{ name, from, to string }{
			{"download", "absent", "downloaded"},
			{"install", "downloaded", "installed"},
			{"start", "installed", "running"},
			{"stop", "running", "installed"},
		} {
			sdk.Job(fmt.Sprintf("%s_c%02d", s.name, k), path, sdk.Update, transition(s.from, s.to))
		}
	}
}

// transition moves a component's state from one value to the next.
func transition(from, to string) sdk.Action {
	return sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			cur, err := c.CurrentString()
			return err == nil && cur == from, err
		},
		Effect: func(*sdk.Context) (any, error) { return to, nil },
		Run:    func(*sdk.Context) error { return nil },
	}
}

func main() {}
