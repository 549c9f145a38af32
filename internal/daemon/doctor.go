package daemon

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tern-iot/tern/boards"
)

// DoctorEnv is what `ternd doctor` looks at. The zero value is this
// machine, as the current user.
type DoctorEnv struct {
	// Root is the filesystem root to look under; "" means "/". Tests point
	// it at a faked device tree.
	Root string
	// Board is the configured board; "" detects it.
	Board string
	// User and Groups are whom ternd runs as; empty means the current user.
	User   string
	Groups []string
}

// Doctor checks that the board is set up for ternd and prints, for every
// problem, exactly what to change. It returns the number of problems.
func Doctor(w io.Writer, env DoctorEnv) int {
	d := doctor{w: w, env: env}
	if d.env.Root == "" {
		d.env.Root = "/"
	}
	if d.env.User == "" {
		d.env.User, d.env.Groups = currentUser()
	}
	b, ok := d.board()
	if !ok {
		return d.problems
	}
	if b.Name == "sim" {
		d.ok("board: sim (simulated lines, nothing to set up)")
		return d.problems
	}
	chip := "/dev/" + b.GPIOChip
	switch {
	case !d.exists(chip):
		d.fix("GPIO: %s is missing: ternd needs the GPIO character device (Raspberry Pi OS has it; on another kernel enable CONFIG_GPIO_CDEV)", chip)
	case !d.inGroup("gpio"):
		d.fix("GPIO: user %s is not in the gpio group, so it cannot open %s: sudo usermod -aG gpio %s, then log in again (the Debian package's tern user is in it)", d.env.User, chip, d.env.User)
	default:
		d.ok("GPIO: %s", chip)
	}
	for _, it := range b.Interfaces {
		kind := map[string]string{"i2c": "I2C", "serial": "serial port"}[it.Kind]
		switch {
		case !d.exists(it.Device):
			if it.Enable != "" {
				d.fix("%s %s is off (%s is missing): add %s to %s and reboot", kind, it.Name, it.Device, it.Enable, b.ConfigFile)
			} else {
				d.fix("%s %s: %s is missing", kind, it.Name, it.Device)
			}
		case it.Group != "" && !d.inGroup(it.Group):
			d.fix("%s %s: user %s is not in the %s group, so it cannot open %s: sudo usermod -aG %s %s, then log in again", kind, it.Name, d.env.User, it.Group, it.Device, it.Group, d.env.User)
		default:
			d.ok("%s %s: %s", kind, it.Name, it.Device)
		}
	}
	return d.problems
}

type doctor struct {
	w        io.Writer
	env      DoctorEnv
	problems int
}

func (d *doctor) ok(format string, args ...any) {
	fmt.Fprintf(d.w, "ok   "+format+"\n", args...)
}

func (d *doctor) fix(format string, args ...any) {
	d.problems++
	fmt.Fprintf(d.w, "FIX  "+format+"\n", args...)
}

func (d *doctor) exists(path string) bool {
	_, err := os.Stat(filepath.Join(d.env.Root, path))
	return err == nil
}

func (d *doctor) inGroup(g string) bool { return slices.Contains(d.env.Groups, g) }

// board finds the configured or detected board.
func (d *doctor) board() (boards.Board, bool) {
	if d.env.Board != "" {
		b, err := boards.Lookup(d.env.Board)
		if err != nil {
			d.fix("board: %v: set board: in ternd.yaml to one of them", err)
			return b, false
		}
		d.ok("board: %s (from the configuration)", b.Name)
		return b, true
	}
	raw, err := os.ReadFile(filepath.Join(d.env.Root, "proc/device-tree/model"))
	if errors.Is(err, fs.ErrNotExist) {
		d.fix("board: this machine has no /proc/device-tree/model, so it is no Raspberry Pi tern knows: set board: sim in ternd.yaml to run on simulated lines, or board: NAME for a known board (%s)", strings.Join(boards.Names(), ", "))
		return boards.Board{}, false
	}
	if err != nil {
		d.fix("board: reading /proc/device-tree/model: %v", err)
		return boards.Board{}, false
	}
	model := strings.TrimRight(string(raw), "\x00\n")
	b, err := boards.ForModel(model)
	if err != nil {
		d.fix("board: %q is not a board tern knows: set board: generic in ternd.yaml to use its GPIO chip's lines by number (GPIO<n>), or board: NAME (%s), or add the board's file under boards/data", model, strings.Join(boards.Names(), ", "))
		return b, false
	}
	d.ok("board: %s (%s)", b.Name, model)
	return b, true
}

func currentUser() (string, []string) {
	u, err := user.Current()
	if err != nil {
		return "?", nil
	}
	var groups []string
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := user.LookupGroupId(id); err == nil {
				groups = append(groups, g.Name)
			}
		}
	}
	return u.Username, groups
}
