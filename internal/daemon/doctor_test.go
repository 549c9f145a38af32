package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/daemon"
)

// fakeRoot builds a device tree: the model file and the given device nodes.
func fakeRoot(t *testing.T, model string, devices ...string) string {
	t.Helper()
	root := t.TempDir()
	if model != "" {
		os.MkdirAll(filepath.Join(root, "proc/device-tree"), 0o755)
		os.WriteFile(filepath.Join(root, "proc/device-tree/model"), []byte(model+"\x00"), 0o644)
	}
	for _, d := range devices {
		os.MkdirAll(filepath.Join(root, filepath.Dir(d)), 0o755)
		os.WriteFile(filepath.Join(root, d), nil, 0o644)
	}
	return root
}

func TestDoctor(t *testing.T) {
	for name, tc := range map[string]struct {
		env      daemon.DoctorEnv
		problems int
		want     []string
	}{
		"this machine: no device tree": {
			env: daemon.DoctorEnv{Root: fakeRoot(t, ""), User: "pi"}, problems: 1,
			want: []string{"FIX  board: this machine has no /proc/device-tree/model", "set board: sim in ternd.yaml"},
		},
		"a Pi 4 set up right": {
			env: daemon.DoctorEnv{Root: fakeRoot(t, "Raspberry Pi 4 Model B Rev 1.5", "/dev/gpiochip0", "/dev/i2c-1", "/dev/serial0"),
				User: "tern", Groups: []string{"gpio", "i2c", "dialout"}},
			want: []string{"ok   board: rpi4 (Raspberry Pi 4 Model B Rev 1.5)", "ok   GPIO: /dev/gpiochip0", "ok   I2C i2c1: /dev/i2c-1", "ok   serial port serial0: /dev/serial0"},
		},
		"a Pi 4 with I2C off and the user outside gpio": {
			env: daemon.DoctorEnv{Root: fakeRoot(t, "Raspberry Pi 4 Model B Rev 1.5", "/dev/gpiochip0", "/dev/serial0"),
				User: "pi", Groups: []string{"dialout"}},
			problems: 2,
			want: []string{
				"FIX  GPIO: user pi is not in the gpio group, so it cannot open /dev/gpiochip0: sudo usermod -aG gpio pi",
				"FIX  I2C i2c1 is off (/dev/i2c-1 is missing): add dtparam=i2c_arm=on to /boot/firmware/config.txt and reboot",
				"ok   serial port serial0",
			},
		},
		"a Pi 5: its header is gpiochip4; serial off": {
			env: daemon.DoctorEnv{Root: fakeRoot(t, "Raspberry Pi 5 Model B Rev 1.0", "/dev/gpiochip4", "/dev/i2c-1"),
				User: "tern", Groups: []string{"gpio", "i2c"}},
			problems: 1,
			want:     []string{"ok   GPIO: /dev/gpiochip4", "FIX  serial port serial0 is off (/dev/serial0 is missing): add enable_uart=1 to /boot/firmware/config.txt and reboot"},
		},
		"an unknown board": {
			env: daemon.DoctorEnv{Root: fakeRoot(t, "Banana Pi M2"), User: "x"}, problems: 1,
			want: []string{`FIX  board: "Banana Pi M2" is not a board tern knows: set board: generic in ternd.yaml`},
		},
		"the sim board, configured": {
			env:  daemon.DoctorEnv{Root: fakeRoot(t, ""), Board: "sim", User: "x"},
			want: []string{"ok   board: sim"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			if n := daemon.Doctor(&out, tc.env); n != tc.problems {
				t.Errorf("%d problems, want %d:\n%s", n, tc.problems, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	// And on this very machine, as whoever runs the tests: it says something
	// true about it and does not crash.
	var out strings.Builder
	daemon.Doctor(&out, daemon.DoctorEnv{})
	_, err := os.Stat("/proc/device-tree/model")
	if hasModel := err == nil; !hasModel && !strings.Contains(out.String(), "no /proc/device-tree/model") {
		t.Errorf("on this machine:\n%s", out.String())
	}
}
