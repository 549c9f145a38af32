// Command methods is the benchmark's domain where methods matter
// (PROBLEMS.md, methods-20): plus_four and plus_two expand into smaller
// steps, plus_one counts.
package main

import "github.com/tern-iot/tern/sdk"

func init() {
	sdk.Module("bench-methods", "1.0.0")
	sdk.Method("plus_four", "/counters/:name", sdk.Update, sdk.Expansion{
		Condition: gap(4),
		Expand: func(c *sdk.Context) ([]sdk.TaskRef, error) {
			return []sdk.TaskRef{sdk.Again("plus_two"), sdk.Again("plus_two")}, nil
		},
	})
	sdk.Method("plus_two", "/counters/:name", sdk.Update, sdk.Expansion{
		Condition: gap(2),
		Expand: func(c *sdk.Context) ([]sdk.TaskRef, error) {
			return []sdk.TaskRef{sdk.Again("plus_one"), sdk.Again("plus_one")}, nil
		},
	})
	sdk.Job("plus_one", "/counters/:name", sdk.Update, sdk.Action{
		Condition: gap(1),
		Effect: func(c *sdk.Context) (any, error) {
			cur, _, err := values(c)
			return cur + 1, err
		},
		Run: func(*sdk.Context) error { return nil },
	})
}

// gap holds when the target is at least n above the counter.
func gap(n float64) func(*sdk.Context) (bool, error) {
	return func(c *sdk.Context) (bool, error) {
		cur, tgt, err := values(c)
		return err == nil && tgt-cur >= n, err
	}
}

func values(c *sdk.Context) (cur, tgt float64, err error) {
	if cur, err = c.CurrentNumber(); err == nil {
		tgt, err = c.TargetNumber()
	}
	return cur, tgt, err
}

func main() {}
