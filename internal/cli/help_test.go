package cli_test

import (
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/cli"
)

// Every command answers --help (and tern help COMMAND) on stdout with exit
// 0: its synopsis, its flags and its examples.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd     []string
		example string // a line of its examples
		flag    string // one of its flags
	}{
		{[]string{"broker"}, "tern broker --listen 0.0.0.0:1883 --data", "-listen"},
		{[]string{"push"}, "tern push --fleet demo --group heaters --key ops.key target.json", "-group"},
		{[]string{"release"}, "tern release --fleet demo --module relay --key ops.key --version 12 --config ternd.yaml relay.wasm", "-module"},
		{[]string{"status"}, "tern status --fleet demo --group heaters --json", "-wait"},
		{[]string{"watch"}, "tern watch --fleet demo --group heaters --pushed 7 --until-converged", "-until-converged"},
		{[]string{"plan"}, "tern plan --module relay.wasm --target target.json --format mermaid", "-strict"},
		{[]string{"module", "build"}, "tern module build ./plugins/relay -o relay.wasm", "-o"},
		{[]string{"module", "sign"}, "tern module sign --key ops.key relay.wasm", "-key"},
		{[]string{"module", "inspect"}, "tern module inspect relay.wasm --trust ops.pub --json", "-trust"},
		{[]string{"keys", "generate"}, "tern keys generate ops", "-dir"},
		{[]string{"keys", "list"}, "tern keys list --dir ~/.tern/keys", "-dir"},
	} {
		name := strings.Join(tc.cmd, " ")
		for _, args := range [][]string{
			append(append([]string{}, tc.cmd...), "--help"),
			append(append([]string{}, tc.cmd...), "-h"),
			append([]string{"help"}, tc.cmd...),
		} {
			code, out, errOut := tern(t, args...)
			if code != cli.ExitOK || errOut != "" {
				t.Errorf("tern %s: exit %d, stderr %q; want 0 and help on stdout", strings.Join(args, " "), code, errOut)
			}
			for _, want := range []string{"Usage: tern " + name, "Flags:", "  " + tc.flag, "Examples:", tc.example} {
				if !strings.Contains(out, want) {
					t.Errorf("tern %s: no %q in\n%s", strings.Join(args, " "), want, out)
				}
			}
		}
	}
	// Commands made of subcommands list them.
	for _, cmd := range []string{"module", "keys"} {
		code, out, _ := tern(t, cmd, "--help")
		if code != cli.ExitOK || !strings.Contains(out, "tern "+cmd+" SUBCOMMAND --help") {
			t.Errorf("tern %s --help: exit %d\n%s", cmd, code, out)
		}
	}
	// The top-level help lists every command and the exit codes.
	code, out, _ := tern(t, "--help")
	if code != cli.ExitOK {
		t.Errorf("tern --help: exit %d", code)
	}
	for _, want := range []string{"tern status", "tern watch", "tern push", "tern help COMMAND", "Exit status:", "3  timeout", "4  status: some listed device is not converged"} {
		if !strings.Contains(out, want) {
			t.Errorf("tern --help does not mention %q:\n%s", want, out)
		}
	}
}

// A wrong command line exits 2 with one line saying what is wrong and one
// saying where to look; it does not drown them in the whole help.
func TestUsageErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--device", "a", "--group", "b"}, "give --device or --group, not both"},
		{[]string{"status", "pi-001"}, "name a device with --device ID"},
		{[]string{"status", "--group", "a/b"}, "--group"},
		{[]string{"status", "--wait", "0s"}, "--wait 0s: must be positive"},
		{[]string{"status", "--wait", "soon"}, `invalid value "soon" for flag -wait`},
		{[]string{"watch", "--device", "a+b"}, "--device"},
		{[]string{"watch", "--expect", "-1"}, "--expect -1"},
		{[]string{"watch", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"help", "frobnicate"}, "unknown command"},
	} {
		code, out, errOut := tern(t, tc.args...)
		if code != cli.ExitUsage {
			t.Errorf("tern %s: exit %d, want %d", strings.Join(tc.args, " "), code, cli.ExitUsage)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("tern %s: stderr %q, want it to say %q", strings.Join(tc.args, " "), errOut, tc.want)
		}
		if tc.args[0] != "help" && (!strings.Contains(errOut, "Run 'tern help "+tc.args[0]+"'") || strings.Contains(errOut, "Examples:") || out != "") {
			t.Errorf("tern %s: want the error and a hint only, on stderr; got stdout %q, stderr %q", strings.Join(tc.args, " "), out, errOut)
		}
	}
}
