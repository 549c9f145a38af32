// Command counters is the benchmark's counter domain (PROBLEMS.md,
// counters-N): plus_one counts a counter up to its target.
package main

import "github.com/tern-iot/tern/sdk"

func init() {
	sdk.Module("bench-counters", "1.0.0")
	sdk.Job("plus_one", "/counters/:name", sdk.Update, plusOne)
}

// plusOne is shared with the methods domain's copy of it.
var plusOne = sdk.Action{
	Condition: func(c *sdk.Context) (bool, error) {
		cur, tgt, err := values(c)
		return err == nil && cur < tgt, err
	},
	Effect: func(c *sdk.Context) (any, error) {
		cur, _, err := values(c)
		return cur + 1, err
	},
	Run: func(*sdk.Context) error { return nil },
}

func values(c *sdk.Context) (cur, tgt float64, err error) {
	if cur, err = c.CurrentNumber(); err == nil {
		tgt, err = c.TargetNumber()
	}
	return cur, tgt, err
}

func main() {}
