package cli_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/wat"
)

// tern release signs the module if it is not (embedding its manifest
// first), signs the release for the fleet and prefix given, prints the
// envelope with --dry-run, publishes it otherwise, and picks the version
// after the retained one.
func TestRelease(t *testing.T) {
	dir := t.TempDir()
	pub, err := signing.Generate(dir, "ops")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ops.key")
	mod := filepath.Join(dir, "evil-2.0.0.wasm") // unsigned, no manifest section
	if err := os.WriteFile(mod, wat.AssembleFile(t, filepath.Join("..", "daemon", "testdata", "evil-2.0.0.wat")), 0o644); err != nil {
		t.Fatal(err)
	}
	trust := signing.NewTrust(pub)

	code, out, errOut := tern(t, "release", "--fleet", "demo", "--module", "evil", "--key", key, "--version", "3", "--dry-run", mod)
	if code != cli.ExitOK {
		t.Fatalf("release --dry-run: %d %q", code, errOut)
	}
	env, err := fleet.ParseReleaseEnvelope([]byte(out))
	if err != nil {
		t.Fatalf("--dry-run printed no release: %v\n%.300s", err, out)
	}
	if env.Module != "evil" || env.ModuleVersion != "2.0.0" || env.Version != 3 || env.Fleet != "demo" || env.Prefix != "tern" {
		t.Errorf("release of %s %s version %d for %s/%s, want evil 2.0.0 version 3 for tern/demo", env.Module, env.ModuleVersion, env.Version, env.Prefix, env.Fleet)
	}
	if err := env.Verify(trust); err != nil {
		t.Errorf("the release does not verify: %v", err)
	}
	if err := env.CheckTopics(fleet.Topics{Fleet: "demo"}); err != nil {
		t.Errorf("a device of fleet demo refuses it: %v", err)
	}
	if err := env.CheckTopics(fleet.Topics{Fleet: "prod"}); !errors.Is(err, fleet.ErrWrongFleet) {
		t.Errorf("a device of fleet prod takes it: %v", err)
	}
	if _, _, err := modfile.Verify(env.Wasm, trust); err != nil {
		t.Errorf("the module inside is not signed: %v", err)
	}
	if man, ok, err := modfile.Manifest(env.Wasm); err != nil || !ok || man.Name != "evil" {
		t.Errorf("the module inside carries no manifest naming it (%v, %v): %+v", ok, err, man)
	}
	if !strings.Contains(errOut, "grants: each device runs evil with the grants under modules[].grants for evil in its own ternd.yaml") ||
		!strings.Contains(errOut, "the code asks for gpio, i2c, serial") {
		t.Errorf("release does not say where the grants come from: %q", errOut)
	}

	broker := fleettest.Embedded(t)
	flags := []string{"--broker", broker, "--fleet", "cli", "--key", key, "--module", "evil"}
	release := func(extra ...string) (int, string, string) {
		t.Helper()
		return tern(t, append(append([]string{"release"}, flags...), extra...)...)
	}
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: broker, Topics: fleet.Topics{Fleet: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	retained := func() fleet.ReleaseEnvelope {
		t.Helper()
		held, ok, err := op.RetainedRelease(t.Context(), "evil", 10*time.Second)
		if err != nil || !ok || held.Key != signing.KeyID(pub) || held.Fleet != "cli" {
			t.Fatalf("retained: version %d by %s for fleet %s, ok %v, err %v; want one by the key for fleet cli", held.Version, held.Key, held.Fleet, ok, err)
		}
		return held
	}
	code, out, errOut = release("--version", "7", mod)
	if code != cli.ExitOK || !strings.Contains(out, "released evil 2.0.0 as version 7 on tern/cli/modules/evil") {
		t.Fatalf("release --version 7: %d %q %q", code, out, errOut)
	}

	// A --version not above the retained release: refused before anything
	// is published, naming the retained version.
	other := filepath.Join(dir, "evil-other.wasm") // the same module, other code
	if err := os.WriteFile(other, modfile.AppendSection(wat.AssembleFile(t, filepath.Join("..", "daemon", "testdata", "evil-2.0.0.wat")), "padding", []byte("other")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--version", "5", mod}, "the release retained on tern/cli/modules/evil is version 7 (evil 2.0.0, sha256 "},
		{[]string{"--version", "5", mod}, "--version 5 is below it: devices that took version 7 refuse 5. Leave --version out (the default is above 7), or pass a --version above 7; --force publishes version 5 anyway"},
		{[]string{"--version", "7", other}, "--version 7 is its version, with other code"},
		{[]string{"--force", mod}, "--force goes with --version N"},
	} {
		code, out, errOut := release(tc.args...)
		if code != cli.ExitUsage || !strings.Contains(errOut, tc.says) || out != "" {
			t.Errorf("release %s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", strings.Join(tc.args, " "), code, out, errOut, tc.says)
		}
	}
	if held := retained(); held.Version != 7 {
		t.Errorf("a refused release was published: the retained version is %d, want 7", held.Version)
	}
	// The retained release again (same version, same code) is harmless.
	if code, _, errOut := release("--version", "7", mod); code != cli.ExitOK || !strings.Contains(errOut, "is this one (version 7") {
		t.Errorf("release of the retained release again: exit %d, stderr %q", code, errOut)
	}
	// --force publishes a lower one (for a release no device took).
	if code, out, errOut := release("--version", "5", "--force", mod); code != cli.ExitOK || !strings.Contains(out, "as version 5 ") {
		t.Fatalf("release --version 5 --force: exit %d %q %q", code, out, errOut)
	}

	// Without --version: above the retained release (5) and above the
	// older release devices may hold (7): the time in milliseconds.
	before := uint64(time.Now().UnixMilli())
	code, out, errOut = release(mod)
	if code != cli.ExitOK {
		t.Fatalf("release after version 5: %d %q %q", code, out, errOut)
	}
	if held := retained(); held.Version < before || !strings.Contains(out, fmt.Sprintf("as version %d ", held.Version)) {
		t.Errorf("release after an older release was left retained: published version %d (%q); want the time in milliseconds, at least %d", held.Version, out, before)
	}

	// The retained release holds the largest version: no next one.
	top := fleet.NewRelease("evil", fleet.MaxVersion, env.Wasm)
	top.SetTopics(fleet.Topics{Fleet: "cli"})
	top.Sign(mustKey(t, key))
	if err := op.PushRelease(t.Context(), top); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = release(mod)
	if code != cli.ExitFail || !strings.Contains(errOut, fmt.Sprintf("has version %d, the largest there is", uint64(fleet.MaxVersion))) {
		t.Errorf("release after the largest version: %d %q", code, errOut)
	}
	code, _, errOut = release("--version", "10", mod)
	if code != cli.ExitUsage || !strings.Contains(errOut, "No version is above it") {
		t.Errorf("release --version 10 after the largest version: %d %q", code, errOut)
	}
}

func mustKey(t *testing.T, path string) ed25519.PrivateKey {
	t.Helper()
	priv, err := signing.ReadPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// tern release refuses, before it signs or publishes anything, what
// would replace the wrong module, carry a version devices refuse, or go
// to a fleet the device named by --config is not in; and with --config it
// prints the grants the release runs with there.
func TestReleaseRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := signing.Generate(dir, "ops"); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ops.key")
	mod := filepath.Join(dir, "evil.wasm")
	if err := os.WriteFile(mod, wat.AssembleFile(t, filepath.Join("..", "daemon", "testdata", "evil-2.0.0.wat")), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(lines ...string) string {
		path := filepath.Join(t.TempDir(), "ternd.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	withEvil := config("device: pi-007", "fleet: demo", "modules:", "  - name: evil", "    grants: {gpio: [GPIO17, GPIO27], i2c: [i2c1:0x48]}")
	withoutEvil := config("device: pi-008", "fleet: demo", "modules:", "  - name: relay")
	otherFleet := config("device: pi-009", "fleet: prod", "modules:", "  - name: evil")
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no --module", []string{mod}, cli.ExitUsage,
			`release needs --module NAME, the module the release replaces on every device that runs it (and whose grants it runs with); ` + mod + ` calls itself "evil": if that is the module to replace, add --module evil`},
		{"another module", []string{"--module", "relay", mod}, cli.ExitUsage,
			mod + ` calls itself "evil" (its manifest), not "relay": released as relay it would replace relay on every device and run with relay's grants; release it with --module evil`},
		{"bad --module", []string{"--module", "a/b", mod}, cli.ExitUsage, "--module"},
		{"version above the ceiling", []string{"--module", "evil", "--version", "9007199254740992", mod}, cli.ExitUsage,
			"--version 9007199254740992 is above the largest version, 9007199254740991"},
		{"version 2^64-1", []string{"--module", "evil", "--version", "18446744073709551615", mod}, cli.ExitUsage, "above the largest version"},
		{"a device of another fleet", []string{"--module", "evil", "--config", otherFleet, mod}, cli.ExitUsage,
			"is a device of fleet prod (topic tern/prod/modules/evil), but the release goes to tern/demo/modules/evil"},
		{"a device of another prefix", []string{"--module", "evil", "--prefix", "acme", "--config", withEvil, mod}, cli.ExitUsage,
			"but the release goes to acme/demo/modules/evil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"release", "--fleet", "demo", "--key", key, "--dry-run"}, tc.args...)
			code, out, errOut := tern(t, args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) || out != "" {
				t.Errorf("tern %s: exit %d, stdout %.80q, stderr %q; want exit %d saying %q", strings.Join(args, " "), code, out, errOut, tc.code, tc.says)
			}
		})
	}

	for config, says := range map[string]string{
		withEvil:    "grants: on devices configured like " + withEvil + " (device pi-007), evil runs with gpio [GPIO17 GPIO27], i2c [i2c1:0x48], serial none; the code asks for gpio, i2c, serial",
		withoutEvil: "grants: " + withoutEvil + " does not run module evil, so devices configured like it ignore this release",
	} {
		code, out, errOut := tern(t, "release", "--fleet", "demo", "--key", key, "--dry-run", "--module", "evil", "--config", config, mod)
		if code != cli.ExitOK || !strings.Contains(errOut, says) {
			t.Errorf("release --config %s: exit %d, stderr %q; want it to say %q", config, code, errOut, says)
		}
		if _, err := fleet.ParseReleaseEnvelope([]byte(out)); err != nil {
			t.Errorf("release --config %s printed no release: %v", config, err)
		}
	}
}
