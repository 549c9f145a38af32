package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/cli"
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
	if code != cli.ExitOK || !strings.Contains(out, "relay 0.1.0, 2 jobs, 1 sensors") {
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
