package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/cli"
	"github.com/tern-iot/tern/internal/modfile"
)

// The operator's path for a fix: a key, a build with the manifest
// embedded, a signature, and an inspection that verifies it.
func TestKeysBuildSignInspect(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := tern(t, "keys", "generate", "ops", "--dir", dir)
	if code != cli.ExitOK || !strings.Contains(out, "trusted_keys:") || !strings.Contains(out, "tern-ed25519-public ") {
		t.Fatalf("keys generate: %d %q %q", code, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ops.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	if code, _, errOut := tern(t, "keys", "generate", "ops", "--dir", dir); code == cli.ExitOK || !strings.Contains(errOut, "never overwritten") {
		t.Fatalf("a second generate of the same name must fail: %d %q", code, errOut)
	}
	tern(t, "keys", "generate", "other", "--dir", dir)
	if code, out, _ := tern(t, "keys", "list", "--dir", dir); code != cli.ExitOK || !strings.Contains(out, "ops") || !strings.Contains(out, "other") {
		t.Fatalf("keys list: %d %q", code, out)
	}

	mod := filepath.Join(dir, "relay.wasm")
	wd, _ := os.Getwd()
	code, out, errOut = tern(t, "module", "build", filepath.Join(wd, "..", "..", "plugins", "relay"), "-o", mod)
	if code != cli.ExitOK || !strings.Contains(out, "relay 0.1.0, 2 jobs, 1 commands, 1 sensors") {
		t.Fatalf("module build: %d %q %q", code, out, errOut)
	}
	code, out, _ = tern(t, "module", "inspect", mod)
	if code != cli.ExitOK || !strings.Contains(out, "module   relay 0.1.0 (ABI 1)") || !strings.Contains(out, "signer   unsigned") || !strings.Contains(out, "/relays/:name") {
		t.Fatalf("inspect unsigned: %d\n%s", code, out)
	}
	if code, out, errOut = tern(t, "module", "sign", "--key", filepath.Join(dir, "ops.key"), mod); code != cli.ExitOK || !strings.Contains(out, "signed") {
		t.Fatalf("module sign: %d %q %q", code, out, errOut)
	}
	code, out, _ = tern(t, "module", "inspect", mod, "--trust", filepath.Join(dir, "ops.pub"))
	if code != cli.ExitOK || !strings.Contains(out, "verified yes") {
		t.Fatalf("inspect trusted: %d\n%s", code, out)
	}
	code, out, _ = tern(t, "module", "inspect", mod, "--trust", filepath.Join(dir, "other.pub"))
	if code != cli.ExitFail || !strings.Contains(out, "verified NO") || !strings.Contains(out, "does not trust") {
		t.Fatalf("inspect with another key: %d\n%s", code, out)
	}
	// A private key where a public one belongs is named as such.
	if code, _, errOut := tern(t, "module", "inspect", mod, "--trust", filepath.Join(dir, "ops.key")); code != cli.ExitUsage || !strings.Contains(errOut, "private key, not a public one") {
		t.Fatalf("inspect with a private key: %d %q", code, errOut)
	}
	if code, _, errOut := tern(t, "module", "sign", "--key", filepath.Join(dir, "ops.pub"), mod); code != cli.ExitUsage || !strings.Contains(errOut, "public key, not a private one") {
		t.Fatalf("sign with a public key: %d %q", code, errOut)
	}
}

// A module from make plugins (a plain go build for wasip1: no manifest
// section) is signed as it is: tern module sign adds the section first,
// read from the module in the sandbox as tern module build does, and the
// result verifies, inspects and releases.
func TestSignPlainBuild(t *testing.T) {
	dir := t.TempDir()
	if code, _, _ := tern(t, "keys", "generate", "ops", "--dir", dir); code != cli.ExitOK {
		t.Fatal("keys generate failed")
	}
	key, pub := filepath.Join(dir, "ops.key"), filepath.Join(dir, "ops.pub")
	mod := moduleFile(t, "github.com/tern-iot/tern/plugins/relay")
	plain, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := modfile.Manifest(plain); ok {
		t.Fatal("the plain build has a manifest section already: this test tests nothing")
	}
	code, out, _ := tern(t, "module", "inspect", mod)
	if code != cli.ExitOK || !strings.Contains(out, "module   relay 0.1.0 (ABI 1), no manifest section (tern module sign adds it)") {
		t.Errorf("inspect of a plain build: exit %d\n%s", code, out)
	}
	code, out, errOut := tern(t, "module", "sign", "--key", key, mod)
	if code != cli.ExitOK || !strings.Contains(out, "signed "+mod+" (relay 0.1.0)") || !strings.Contains(out, "manifest section added first") {
		t.Fatalf("module sign of a plain build: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ = tern(t, "module", "inspect", mod, "--trust", pub)
	if code != cli.ExitOK || !strings.Contains(out, "module   relay 0.1.0 (ABI 1)\n") || !strings.Contains(out, "verified yes") {
		t.Errorf("inspect after signing: exit %d\n%s", code, out)
	}
	code, out, errOut = tern(t, "release", "--dry-run", "--fleet", "demo", "--module", "relay", "--key", key, mod)
	env, err := fleet.ParseReleaseEnvelope([]byte(out))
	if code != cli.ExitOK || err != nil || env.ModuleVersion != "0.1.0" {
		t.Fatalf("release of the signed module: exit %d, %v, %q", code, err, errOut)
	}
	if man, ok, err := modfile.Manifest(env.Wasm); !ok || err != nil || man.Name != "relay" {
		t.Errorf("the released module has no manifest section naming relay: %v %v %+v", ok, err, man)
	}

	// Signed without the section (by hand): the section cannot come after
	// the signature, so it is refused with what to do.
	signedBare, err := modfile.Sign(plain, mustKey(t, key))
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.wasm")
	if err := os.WriteFile(bare, signedBare, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := tern(t, "module", "sign", "--key", key, bare); code != cli.ExitUsage || !strings.Contains(errOut, "is signed but has no manifest section") {
		t.Errorf("module sign of a module signed without a manifest section: exit %d, %q", code, errOut)
	}
}
