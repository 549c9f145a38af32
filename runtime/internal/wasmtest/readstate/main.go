// Command readstate is a test module that reads the state beyond its own
// path (sdk Context.Read): "copy" sets /dst/NAME to the state's value at
// /src/NAME, "bad" reads a malformed pointer, and the sensor "peek" tries
// to read the state, which sensors may not.
package main

import (
	"errors"
	"time"

	"github.com/tern-iot/tern/sdk"
)

func source(c *sdk.Context) (sdk.Value, error) { return c.Read("/src/" + c.Param("name")) }

func init() {
	sdk.Module("readstate", "1.0.0")
	sdk.Job("copy", "/dst/:name", sdk.Any, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			v, err := source(c)
			return v.Exists(), err
		},
		Effect: func(c *sdk.Context) (any, error) {
			v, err := source(c)
			return v, err
		},
		Run: func(c *sdk.Context) error {
			v, err := source(c)
			if err == nil && !v.Exists() {
				err = errors.New("the source is gone")
			}
			return err
		},
	})
	sdk.Job("bad", "/bad/:name", sdk.Any, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			_, err := c.Read("no-leading-slash")
			return false, err
		},
		Run: func(*sdk.Context) error { return nil },
	})
	sdk.Sensor("peek", "/peek", time.Second, func(c *sdk.Context) (any, error) {
		if _, err := c.Read("/src"); err != nil {
			return err.Error(), nil
		}
		return "read the state", nil
	})
}

func main() {}
