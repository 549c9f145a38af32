package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/cli"
)

// Every command tern dispatches (the table Main runs from, so a command
// added there is checked here) is listed by tern --help, answers its own
// --help and tern help with exit 0 and its usage on stdout, and is on
// docs/cli.md. A group of subcommands (tern module) lists them on --help.
func TestEveryCommandHasHelpAndDocs(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	code, top, errOut := tern(t, "--help")
	if code != cli.ExitOK || errOut != "" {
		t.Fatalf("tern --help: exit %d, stderr %q", code, errOut)
	}
	names := cli.CommandNames()
	if len(names) < 15 {
		t.Fatalf("the command table lists %d commands: %q", len(names), names)
	}
	groups := map[string][]string{}
	for _, name := range names {
		words := strings.Fields(name)
		if len(words) > 1 {
			groups[words[0]] = append(groups[words[0]], name)
		}
		if !regexp.MustCompile(`(?m)^  tern ` + regexp.QuoteMeta(name) + `( |$)`).MatchString(top) {
			t.Errorf("tern --help does not list %q:\n%s", "tern "+name, top)
		}
		if !regexp.MustCompile("`tern " + regexp.QuoteMeta(name) + "[` ]").Match(docs) {
			t.Errorf("docs/cli.md does not mention `tern %s`", name)
		}
		for _, args := range [][]string{
			append(slices.Clone(words), "--help"),
			append(slices.Clone(words), "-h"),
			append([]string{"help"}, words...),
		} {
			code, out, errOut := tern(t, args...)
			if code != cli.ExitOK || errOut != "" || !strings.HasPrefix(out, "Usage: tern "+name) {
				t.Errorf("tern %s: exit %d, stderr %q, stdout %.120q; want exit 0 and %q on stdout",
					strings.Join(args, " "), code, errOut, out, "Usage: tern "+name)
			}
		}
	}
	for group, subs := range groups {
		for _, args := range [][]string{{group, "--help"}, {"help", group}} {
			code, out, errOut := tern(t, args...)
			if code != cli.ExitOK || errOut != "" {
				t.Errorf("tern %s: exit %d, stderr %q; want exit 0", strings.Join(args, " "), code, errOut)
			}
			for _, sub := range subs {
				if !strings.Contains(out, "tern "+sub+" ") {
					t.Errorf("tern %s does not mention %q:\n%s", strings.Join(args, " "), sub, out)
				}
			}
		}
		if slices.Contains(names, group) {
			continue // tern broker is a command of its own too
		}
		// Without a subcommand: a usage error that names them.
		code, _, errOut := tern(t, group)
		if find := strings.TrimPrefix(subs[0], group+" "); code != cli.ExitUsage || !strings.Contains(errOut, "needs a subcommand: "+find) {
			t.Errorf("tern %s: exit %d, stderr %q; want exit 2 naming the subcommands", group, code, errOut)
		}
	}
}

// Every command that connects to a broker refuses an address without a
// scheme (and one that fleet would refuse) as a usage error, exit 2, that
// says what to write, before it reads any file. The commands are those
// whose --help shows -broker, so a new one must be added here.
func TestBrokerAddressIsCheckedFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	cases := map[string][]string{ // command → arguments that get as far as the broker
		"status":         nil,
		"watch":          nil,
		"push":           {"--device", "pi-001", "--key", missing, missing},
		"release":        {"--module", "relay", "--key", missing, missing},
		"agent release":  {"--key", missing, missing},
		"job submit":     {"--device", "pi-001", "--module", "relay", "--command", "pulse", "--key", missing},
		"job status":     {"20261206-000000-aaaaaa"},
		"job ls":         nil,
		"job edit":       {"20261206-000000-aaaaaa", "--key", missing},
		"job cancel":     {"20261206-000000-aaaaaa", "--key", missing},
		"job who":        {"20261206-000000-aaaaaa"},
		"rollout start":  {"--group", "boilers", "--key", missing, missing},
		"rollout watch":  {"relay-v020"},
		"rollout status": {"relay-v020"},
		"rollout ls":     nil,
		"rollout pause":  {"relay-v020", "--key", missing},
		"rollout resume": {"relay-v020", "--key", missing},
		"rollout abort":  {"relay-v020", "--key", missing},
		"exporter":       {"--data", missing},
		"inventory":      nil,
	}
	for _, name := range cli.CommandNames() {
		_, out, _ := tern(t, append(strings.Fields(name), "--help")...)
		if _, ok := cases[name]; strings.Contains(out, "  -broker") != ok {
			t.Errorf("tern %s: -broker in its --help is %v, but the cases here say %v: add it to (or drop it from) the cases", name, !ok, ok)
		}
	}
	for name, extra := range cases {
		for _, tc := range []struct{ broker, want string }{
			{"127.0.0.1:1883", "--broker 127.0.0.1:1883 has no scheme: write tcp://127.0.0.1:1883 (or ssl://127.0.0.1:8883 for a broker that speaks TLS)"},
			{"broker.example", "--broker broker.example has no scheme: write tcp://broker.example (or ssl://broker.example"},
			{"http://broker.example:1883", `scheme "http" is not supported`},
			{"", "--broker is empty"},
		} {
			args := append(append(strings.Fields(name), "--broker", tc.broker), extra...)
			code, out, errOut := tern(t, args...)
			if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("tern %s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", strings.Join(args, " "), code, out, errOut, tc.want)
			}
		}
	}
	// From the environment, the message names it.
	t.Setenv("TERN_BROKER", "localhost:1883")
	if code, _, errOut := tern(t, "status"); code != cli.ExitUsage || !strings.Contains(errOut, "$TERN_BROKER localhost:1883 has no scheme: write tcp://localhost:1883") {
		t.Errorf("status with TERN_BROKER=localhost:1883: exit %d, %q", code, errOut)
	}
	// TLS files that do not fit the address: also before connecting.
	t.Setenv("TERN_BROKER", "")
	if code, _, errOut := tern(t, "status", "--broker", "tcp://127.0.0.1:1", "--ca", missing); code != cli.ExitUsage || !strings.Contains(errOut, "plain TCP") {
		t.Errorf("status with a CA and a tcp:// broker: exit %d, %q", code, errOut)
	}
	if code, _, errOut := tern(t, "status", "--broker", "ssl://127.0.0.1:1", "--ca", missing); code != cli.ExitUsage || !strings.Contains(errOut, missing) {
		t.Errorf("status with a missing CA file: exit %d, %q", code, errOut)
	}
}

// A file named on the command line that is not there, or is a directory,
// is a usage error (exit 2) naming the flag or argument and the file, with
// what to give instead.
func TestMissingFilesAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.wasm")
	code, _, _ := tern(t, "keys", "generate", "ops", "--dir", dir)
	if code != cli.ExitOK {
		t.Fatal("keys generate failed")
	}
	key := filepath.Join(dir, "ops.key")
	relay := moduleFile(t, "github.com/tern-iot/tern/plugins/relay")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--module", missing, "--target", `{}`}, "--module " + missing + ": no such file"},
		{[]string{"plan", "--module", dir, "--target", `{}`}, "--module " + dir + " is a directory, not a file"},
		{[]string{"plan", "--module", relay, "--target", missing}, "--target " + missing + ": no such file"},
		{[]string{"plan", "--module", relay, "--state", missing, "--target", `{}`}, "--state " + missing + ": no such file"},
		{[]string{"plan", "--module", relay, "--config", "relay=@" + missing, "--target", `{}`}, "--config relay: file " + missing + ": no such file"},
		{[]string{"push", "--device", "pi-001", missing}, "the target " + missing + ": no such file"},
		{[]string{"sign", "--device", "pi-001", "--key", missing, `{}`}, "--key " + missing + ": no such file"},
		{[]string{"sign", "--device", "pi-001", "--key", key, missing}, "the target " + missing + ": no such file"},
		{[]string{"release", "--dry-run", "--module", "relay", "--key", key, missing}, "module " + missing + ": no such file"},
		{[]string{"release", "--dry-run", "--module", "relay", "--key", key, "--config", missing, relay}, "--config " + missing + ": no such file"},
		{[]string{"agent", "release", "--dry-run", "--key", key, missing}, "ternd binary " + missing + ": no such file"},
		{[]string{"module", "sign", "--key", key, missing}, "module " + missing + ": no such file"},
		{[]string{"module", "inspect", missing}, "module " + missing + ": no such file"},
		{[]string{"module", "inspect", relay, "--trust", missing}, "--trust " + missing + ": no such file"},
		{[]string{"module", "build", filepath.Join(dir, "nodir")}, filepath.Join(dir, "nodir") + ": no such directory"},
		{[]string{"broker", "acl", "--inventory", missing}, "--inventory " + missing + ": no such file"},
		{[]string{"testbench", "run", missing}, "scenario " + missing + ": no such file"},
	} {
		code, _, errOut := tern(t, tc.args...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("tern %s: exit %d, stderr %q; want exit 2 saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}

// --version of every command that signs is 1 to 2^53-1: 0, more, and what
// is not a whole number in digits are usage errors that say so; the
// largest is taken.
func TestVersionFlags(t *testing.T) {
	dir := t.TempDir()
	if code, _, _ := tern(t, "keys", "generate", "ops", "--dir", dir); code != cli.ExitOK {
		t.Fatal("keys generate failed")
	}
	key := filepath.Join(dir, "ops.key")
	for _, cmd := range [][]string{
		{"push", "--device", "pi-001"},
		{"sign", "--device", "pi-001", "--key", key},
		{"release", "--dry-run", "--module", "relay", "--key", key},
		{"agent", "release", "--dry-run", "--key", key},
	} {
		for _, tc := range []struct{ version, want string }{
			{"0", "--version 0: versions start at 1"},
			{"9007199254740992", "--version 9007199254740992 is above the largest version, 9007199254740991"},
			{"18446744073709551616", "--version 18446744073709551616 is above the largest version"},
			{"2e1", `invalid value "2e1" for flag -version: not a whole number`},
			{"-1", `invalid value "-1" for flag -version: not a whole number`},
		} {
			args := append(slices.Clone(cmd), "--version", tc.version, `{}`)
			code, out, errOut := tern(t, args...)
			if code != cli.ExitUsage || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("tern %s: exit %d, stdout %.80q, stderr %q; want exit 2 saying %q", strings.Join(args, " "), code, out, errOut, tc.want)
			}
		}
	}
}
