package cli_test

import (
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

// tern release signs the module if it is not, prints the envelope with
// --dry-run, publishes it otherwise, and picks the version after the
// retained one.
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

	code, out, errOut := tern(t, "release", "--key", key, "--version", "3", "--dry-run", mod)
	if code != cli.ExitOK {
		t.Fatalf("release --dry-run: %d %q", code, errOut)
	}
	env, err := fleet.ParseReleaseEnvelope([]byte(out))
	if err != nil {
		t.Fatalf("--dry-run printed no release: %v\n%.300s", err, out)
	}
	if env.Module != "evil" || env.ModuleVersion != "2.0.0" || env.Version != 3 {
		t.Errorf("release of %s %s version %d, want evil 2.0.0 version 3", env.Module, env.ModuleVersion, env.Version)
	}
	if err := env.Verify(trust); err != nil {
		t.Errorf("the release does not verify: %v", err)
	}
	if _, _, err := modfile.Verify(env.Wasm, trust); err != nil {
		t.Errorf("the module inside is not signed: %v", err)
	}

	broker := fleettest.Embedded(t)
	flags := []string{"--broker", broker, "--fleet", "cli", "--key", key}
	code, out, errOut = tern(t, append(append([]string{"release"}, flags...), "--version", "7", mod)...)
	if code != cli.ExitOK || !strings.Contains(out, "released evil 2.0.0 as version 7 on tern/cli/modules/evil") {
		t.Fatalf("release --version 7: %d %q %q", code, out, errOut)
	}
	code, out, errOut = tern(t, append(append([]string{"release"}, flags...), mod)...)
	if code != cli.ExitOK || !strings.Contains(out, "as version 8 ") {
		t.Fatalf("release after version 7: %d %q %q; want version 8", code, out, errOut)
	}
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: broker, Topics: fleet.Topics{Fleet: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	held, ok, err := op.RetainedRelease(t.Context(), "evil", 10*time.Second)
	if err != nil || !ok || held.Version != 8 || held.Key != signing.KeyID(pub) {
		t.Errorf("retained: version %d by %s, ok %v, err %v; want version 8 by the key", held.Version, held.Key, ok, err)
	}

	if code, _, errOut := tern(t, "release", "--dry-run", mod); code != cli.ExitUsage || !strings.Contains(errOut, "needs --key") {
		t.Errorf("release without a key: %d %q", code, errOut)
	}
}
