package gpio_test

import (
	"testing"

	"github.com/tern-iot/tern/hal/gpio"
)

func TestStrings(t *testing.T) {
	for _, c := range []struct {
		got  interface{ String() string }
		want string
	}{
		{gpio.Low, "Low"},
		{gpio.High, "High"},
		{gpio.PullNone, "PullNone"},
		{gpio.PullDown, "PullDown"},
		{gpio.PullUp, "PullUp"},
		{gpio.Pull(7), "Pull(7)"},
		{gpio.Pull(-1), "Pull(-1)"},
	} {
		if s := c.got.String(); s != c.want {
			t.Errorf("String() = %q, want %q", s, c.want)
		}
	}
}
