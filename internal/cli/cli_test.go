package cli_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/internal/wasmbuild"
)

// TestMain gives the package's tern plan runs one cache of compiled modules
// (the user's cache directory, XDG_CACHE_HOME), not the home directory's:
// the relay module compiles once, not in every plan (a minute each under
// the race detector on a busy machine).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cli-cache-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func tern(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := cli.Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestPushAndWatch is the demo's path through the CLI: push a target,
// watch until the device reports it reached. The watch's timeout is a bound
// on a hang: ternd compiles the relay module first, a minute under the race
// detector on a busy machine.
func TestPushAndWatch(t *testing.T) {
	broker := fleettest.Embedded(t)
	mod := relayFile(t)
	cfg := daemon.Config{Device: "pi-001", Fleet: "cli", Broker: broker, DataDir: t.TempDir(),
		Modules: []daemon.ModuleConfig{{Name: "relay", Path: mod, Config: map[string]any{"lines": map[string]string{"heater": "GPIO17"}}}}}
	cfg.Modules[0].Grants.GPIO = []string{"GPIO17"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, nil, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()

	fleet := []string{"--broker", broker, "--fleet", "cli"}
	code, out, errOut := tern(t, append(append([]string{"push"}, fleet...), "--device", "pi-001", "--version", "5", `{"relays":{"heater":true}}`)...)
	if code != cli.ExitOK || !strings.Contains(out, "pushed target version 5") {
		t.Fatalf("push: %d %q %q", code, out, errOut)
	}
	code, out, errOut = tern(t, append(append([]string{"watch"}, fleet...), "--device", "pi-001", "--until-converged", "--min-version", "5", "--timeout", testbound.Hang.String())...)
	if code != cli.ExitOK || !strings.Contains(out, `converged: {"relays":{"heater":true}}`) {
		t.Fatalf("watch: %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "task.done") {
		t.Errorf("watch printed no task events:\n%s", out)
	}

	// A device that never reports: exit 3 with a message that says why.
	code, _, errOut = tern(t, append(append([]string{"watch"}, fleet...), "--device", "nobody", "--until-converged", "--timeout", "300ms")...)
	if code != cli.ExitTimeout || !strings.Contains(errOut, "no report at all") {
		t.Fatalf("watch of a silent device: %d %q", code, errOut)
	}
}

// relayFile writes the relay module, built from plugins/relay, to a file
// of the test's and returns its path.
func relayFile(t *testing.T) string {
	t.Helper()
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(t.TempDir(), "relay.wasm")
	if err := os.WriteFile(mod, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return mod
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"push", "--device", "pi-001", "[1,2]"}, "must be a JSON object"},
		{[]string{"push", "--device", "pi-001", "{not json"}, "must be a JSON object"},
		{[]string{"push", `{"a":1}`}, "needs one of --device or --group"},
		{[]string{"push", "--device", "a/b", `{"a":1}`}, "device"},
		{[]string{"watch", "--device", "a", "--group", "b"}, "not both"},
		{[]string{"watch", "--pushed", "7"}, "--pushed needs --group or --device"},
		{[]string{"watch", "--group", "heaters", "--pushed", "7", "--version", "9"}, "not both"},
		{[]string{"watch", "--group", "heaters", "--pushed", "9007199254740992"}, "above the largest version"},
		{[]string{"module"}, "tern module build"},
		{[]string{"push", "--bogus"}, "flag provided but not defined"},
	} {
		code, _, errOut := tern(t, tc.args...)
		if code != cli.ExitUsage && code != cli.ExitFail {
			t.Errorf("%v: exit %d, want a failure", tc.args, code)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: stderr %q, want it to mention %q", tc.args, errOut, tc.want)
		}
	}
}

func TestUnreachableBroker(t *testing.T) {
	code, _, errOut := tern(t, "push", "--broker", "tcp://"+fleettest.FreeAddr(t), "--device", "pi-001", `{"a":1}`)
	if code != cli.ExitFail || !strings.Contains(errOut, "tern broker") {
		t.Fatalf("push to nowhere: %d %q", code, errOut)
	}
}

func TestModuleBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "relay.wasm")
	code, stdout, stderr := tern(t, "module", "build", "../../plugins/relay", "-o", out)
	if code != cli.ExitOK {
		t.Fatalf("module build: %d %s %s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil || len(b) < 8 || string(b[:4]) != "\x00asm" {
		t.Fatalf("not a wasm module: %v", err)
	}
}

// tern sign prints an envelope that a device trusting the key accepts for
// the scope it was signed for, and only for that scope.
func TestSign(t *testing.T) {
	dir := t.TempDir()
	pub, err := signing.Generate(dir, "ops")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ops.key")
	code, out, errOut := tern(t, "sign", "--fleet", "demo", "--group", "heaters", "--key", key, "--version", "8", `{"relays":{"heater":true}}`)
	if code != cli.ExitOK {
		t.Fatalf("sign: exit %d: %s", code, errOut)
	}
	env, err := fleet.ParseTargetEnvelope([]byte(out))
	if err != nil {
		t.Fatalf("sign printed no envelope: %v\n%s", err, out)
	}
	trust := signing.NewTrust(pub)
	if env.Version != 8 {
		t.Errorf("version %d, want 8", env.Version)
	}
	if err := env.Verify(fleet.GroupScope("heaters"), trust); err != nil {
		t.Errorf("a device in group heaters refuses it: %v", err)
	}
	if err := env.Verify(fleet.GroupScope("fans"), trust); err == nil {
		t.Error("the envelope also verifies for group fans")
	}
	if env.Fleet != "demo" || env.Prefix != "tern" {
		t.Errorf("signed for %s/%s, want tern/demo", env.Prefix, env.Fleet)
	}
	if err := env.CheckTopics(fleet.Topics{Fleet: "demo"}); err != nil {
		t.Errorf("a device of fleet demo refuses it: %v", err)
	}
	forged := env
	forged.Fleet = "prod"
	if err := forged.Verify(fleet.GroupScope("heaters"), trust); err == nil {
		t.Error("the envelope also verifies for fleet prod")
	}
	if !strings.Contains(errOut, "tern/demo/groups/heaters/target") {
		t.Errorf("stderr does not name the topic to publish on: %q", errOut)
	}

	code, _, errOut = tern(t, "sign", "--device", "pi-001", `{}`)
	if code != cli.ExitUsage || !strings.Contains(errOut, "sign needs --key") {
		t.Errorf("sign without --key: exit %d, %q; want usage error naming --key", code, errOut)
	}
	for _, args := range [][]string{
		{"sign", "--device", "pi-001", "--key", key, "--version", "9007199254740992", `{}`},
		{"push", "--device", "pi-001", "--version", "18446744073709551615", `{}`},
	} {
		code, _, errOut = tern(t, args...)
		if code != cli.ExitUsage || !strings.Contains(errOut, "is above the largest version, 9007199254740991") {
			t.Errorf("tern %s: exit %d, %q; want a usage error about the ceiling", strings.Join(args, " "), code, errOut)
		}
	}
	code, out, errOut = tern(t, "sign", "--device", "pi-001", "--key", key, "--version", "9007199254740991", `{}`)
	if env, err := fleet.ParseTargetEnvelope([]byte(out)); code != cli.ExitOK || err != nil || env.Version != fleet.MaxVersion {
		t.Errorf("sign at the largest version: exit %d, %v, %q", code, err, errOut)
	}

	// A rebase: signed with its replaces, for the scope it names.
	code, out, errOut = tern(t, "sign", "--device", "pi-001", "--key", key, "--version", "12", "--replaces", "9007199254740991", `{}`)
	env, err = fleet.ParseTargetEnvelope([]byte(out))
	if code != cli.ExitOK || err != nil || env.Replaces != fleet.MaxVersion || env.SignedScope != "device/pi-001" {
		t.Fatalf("sign --replaces: exit %d, %v, %+v, %q", code, err, env, errOut)
	}
	if err := env.Verify(fleet.DeviceScope("pi-001"), trust); err != nil {
		t.Errorf("the rebase does not verify: %v", err)
	}
	env.Replaces = 13
	if err := env.Verify(fleet.DeviceScope("pi-001"), trust); err == nil {
		t.Error("the rebase verifies with its replaces changed")
	}
	code, _, errOut = tern(t, "sign", "--device", "pi-001", "--key", key, "--version", "12", "--replaces", "12", `{}`)
	if code != cli.ExitUsage || !strings.Contains(errOut, `"replaces": 12, which is not above it`) {
		t.Errorf("sign --replaces not above --version: exit %d, %q", code, errOut)
	}
}
