package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/cli"
)

// push over TLS with a client certificate, from flags and from the
// environment; without a certificate the broker refuses and the error
// says so.
func TestPushOverTLS(t *testing.T) {
	ca := fleettest.NewCA(t, "fleet CA")
	url := fleettest.EmbeddedTLS(t, ca)
	ops := ca.Client(t, fleet.DefaultOperator)

	code, out, errOut := tern(t, "push", "--broker", url, "--ca", ops.CA, "--cert", ops.Cert, "--cert-key", ops.Key, "--fleet", "demo", "--device", "pi-001", "--version", "3", `{"a":1}`)
	if code != cli.ExitOK || !strings.Contains(out, "pushed target version 3") {
		t.Fatalf("push over TLS: %d %q %q", code, out, errOut)
	}

	t.Setenv("TERN_BROKER", url)
	t.Setenv("TERN_CA", ops.CA)
	t.Setenv("TERN_CERT", ops.Cert)
	t.Setenv("TERN_CERT_KEY", ops.Key)
	if code, out, errOut := tern(t, "push", "--device", "pi-001", "--version", "4", `{"a":1}`); code != cli.ExitOK {
		t.Fatalf("push over TLS configured by the environment: %d %q %q", code, out, errOut)
	}

	t.Setenv("TERN_CERT", "")
	t.Setenv("TERN_CERT_KEY", "")
	code, _, errOut = tern(t, "push", "--device", "pi-001", `{"a":1}`)
	if code != cli.ExitFail || !strings.Contains(errOut, "requires a client certificate") {
		t.Fatalf("push without a client certificate: %d %q", code, errOut)
	}
	// A certificate without its key is the user's to fix, before connecting.
	code, _, errOut = tern(t, "push", "--cert", ops.Cert, "--device", "pi-001", `{"a":1}`)
	if code != cli.ExitUsage || !strings.Contains(errOut, "has no key") {
		t.Fatalf("push with a certificate and no key: %d %q", code, errOut)
	}
}

func TestBrokerACL(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(inv, []byte("devices:\n  pi-002: [heaters]\n  pi-001: [heaters, floor-2]\n  pi-003: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := tern(t, "broker", "acl", "--fleet", "demo", "--inventory", inv)
	if code != cli.ExitOK {
		t.Fatalf("broker acl: %d %q", code, errOut)
	}
	want, err := fleet.MosquittoACL(fleet.Topics{Fleet: "demo"}, []string{fleet.DefaultOperator}, map[string][]string{
		"pi-001": {"heaters", "floor-2"}, "pi-002": {"heaters"}, "pi-003": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("broker acl printed\n%s\nwant\n%s", out, want)
	}

	// JSON works too, with operators named.
	if err := os.WriteFile(inv, []byte(`{"operators": ["alice"], "devices": {"pi-001": ["heaters"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := tern(t, "broker", "acl", "--inventory", inv); code != cli.ExitOK || !strings.Contains(out, "user alice\ntopic readwrite tern/default/#\n") {
		t.Fatalf("broker acl from JSON: %d %q %q", code, out, errOut)
	}

	for _, tc := range []struct{ body, want string }{
		{"device:\n  pi-001: [a]\n", "field device not found"},
		{"devices: {}\n", "lists no devices"},
		{"devices:\n  pi/1: [a]\n", "device id"},
		{"devices: [pi-001]\n", "expected devices: {DEVICE: [GROUP, ...]}"},
	} {
		if err := os.WriteFile(inv, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := tern(t, "broker", "acl", "--inventory", inv); code != cli.ExitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("inventory %q: %d %q, want a usage error mentioning %q", tc.body, code, errOut, tc.want)
		}
	}
	if code, _, errOut := tern(t, "broker", "acl"); code != cli.ExitUsage || !strings.Contains(errOut, "needs --inventory") {
		t.Errorf("broker acl without inventory: %d %q", code, errOut)
	}
}
