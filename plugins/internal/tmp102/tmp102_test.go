package tmp102

import "testing"

// The datasheet's 12-bit examples, as the register's two bytes.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		msb, lsb byte
		want     float64
	}{{0x7F, 0xF0, 127.9375}, {0x19, 0x00, 25}, {0x00, 0x40, 0.25}, {0xFF, 0xC0, -0.25}, {0xE7, 0x00, -25}, {0xC9, 0x00, -55}} {
		if got := Decode(tc.msb, tc.lsb); got != tc.want {
			t.Errorf("% x: %v, want %v", []byte{tc.msb, tc.lsb}, got, tc.want)
		}
	}
}
