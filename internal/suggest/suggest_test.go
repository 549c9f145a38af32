package suggest

import "testing"

func TestNearest(t *testing.T) {
	words := []string{"broker", "modules", "trusted_keys", "grants"}
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"brokr", 2, "broker"},
		{"moduels", 2, "modules"},
		{"trusted_key", 2, "trusted_keys"},
		{"flux_capacitor", 3, ""},
		{"grnts", 0, ""},
	} {
		if got := Nearest(c.s, words, c.max); got != c.want {
			t.Errorf("Nearest(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance(kitten, sitting) = %d, want 3", d)
	}
}
