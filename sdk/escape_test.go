package sdk

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{"nginx:1": "nginx:1", "a/b": "a~1b", "~x/": "~0x~1", "": ""} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
