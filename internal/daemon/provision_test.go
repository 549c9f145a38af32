package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/daemon"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func indent(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A first-boot file with inline CA and certificate and a key file next to
// it becomes /etc/tern/ternd.yaml (over the packaged one) and
// /etc/tern/tls/*.pem; no secret stays on the boot partition.
func TestProvision(t *testing.T) {
	for _, bootDir := range []string{"boot/firmware", "boot"} {
		t.Run(bootDir, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "etc/tern/ternd.yaml"), "device: unprovisioned\nboard: sim\nlog_level: warn\n")
			boot := filepath.Join(root, bootDir)
			ca := fleettest.NewCA(t, "fleet CA")
			client := ca.Client(t, "pi-007")
			caPEM, certPEM, keyPEM := readFile(t, client.CA), readFile(t, client.Cert), readFile(t, client.Key)
			writeFile(t, filepath.Join(boot, "key.pem"), keyPEM)
			writeFile(t, filepath.Join(boot, "tern.yaml"), `device: pi-007
fleet: greenhouse
broker: ssl://broker.example:8883
broker_password: s3cret
trusted_keys: ["tern-ed25519-public 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
tls:
  ca: |
    `+indent(caPEM)+`
  cert: |
    `+indent(certPEM)+`
  key: key.pem
`)
			res, err := daemon.Provision(root)
			if err != nil {
				t.Fatal(err)
			}
			if res.From != filepath.Join(boot, "tern.yaml") {
				t.Errorf("applied %q", res.From)
			}
			cfg, err := os.ReadFile(filepath.Join(root, "etc/tern/ternd.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"device: pi-007", "fleet: greenhouse", "log_level: warn", "ca: /etc/tern/tls/ca.pem", "key: /etc/tern/tls/key.pem", "broker: ssl://broker.example:8883"} {
				if !strings.Contains(string(cfg), want) {
					t.Errorf("ternd.yaml lacks %q:\n%s", want, cfg)
				}
			}
			for name, mode := range map[string]os.FileMode{"ca.pem": 0o644, "cert.pem": 0o644, "key.pem": 0o640} {
				fi, err := os.Stat(filepath.Join(root, "etc/tern/tls", name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != mode {
					t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), mode)
				}
			}
			key, _ := os.ReadFile(filepath.Join(root, "etc/tern/tls/key.pem"))
			if string(key) != keyPEM {
				t.Errorf("key.pem holds %q", key)
			}
			for _, gone := range []string{"tern.yaml", "key.pem"} {
				if _, err := os.Stat(filepath.Join(boot, gone)); !os.IsNotExist(err) {
					t.Errorf("%s still on the boot partition (%v)", gone, err)
				}
			}
			applied, err := os.ReadFile(filepath.Join(boot, "tern.yaml.applied"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(applied), "s3cret") || strings.Contains(string(applied), "BEGIN") || !strings.Contains(string(applied), "pi-007") {
				t.Errorf("tern.yaml.applied should name the device and hold no secret:\n%s", applied)
			}
			// The written configuration loads, once the TLS paths point
			// into the scratch root.
			loadable := strings.ReplaceAll(string(cfg), "/etc/tern/tls/", filepath.Join(root, "etc/tern/tls")+"/")
			writeFile(t, filepath.Join(root, "check.yaml"), loadable)
			if _, err := daemon.LoadConfig(filepath.Join(root, "check.yaml")); err != nil {
				t.Errorf("the provisioned configuration does not load: %v", err)
			}
			// Run again: nothing to do.
			if res, err := daemon.Provision(root); err != nil || res.From != "" {
				t.Errorf("second run: %+v, %v; want nothing done", res, err)
			}
		})
	}
}

// A first-boot file that would not make a valid configuration is left in
// place, and nothing is written.
func TestProvisionRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ file, msg string }{
		"not yaml":       {"device: [", "not a YAML mapping"},
		"bad device":     {"device: pi/7\n", "device"},
		"ssl without ca": {"device: pi-7\nbroker: ssl://b:8883\n", "needs tls: ca"},
		"missing key":    {"device: pi-7\nbroker: ssl://b:8883\ntls: {ca: system, cert: c.pem, key: k.pem}\n", "tls.cert"},
		"ca missing":     {"device: pi-7\nbroker: ssl://b:8883\ntls: {ca: hello}\n", "tls.ca"},
		"ca not pem":     {"device: pi-7\nbroker: ssl://b:8883\ntls: {ca: \"hello\\nworld\\n\"}\n", "tls.ca"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			boot := filepath.Join(root, "boot/firmware/tern.yaml")
			writeFile(t, boot, tc.file)
			_, err := daemon.Provision(root)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error saying %q", err, tc.msg)
			}
			if _, err := os.Stat(boot); err != nil {
				t.Errorf("the boot file was removed: %v", err)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/tern/ternd.yaml")); !os.IsNotExist(err) {
				t.Errorf("ternd.yaml written: %v", err)
			}
		})
	}
}

func TestProvisionNothingToDo(t *testing.T) {
	res, err := daemon.Provision(t.TempDir())
	if err != nil || res.From != "" {
		t.Errorf("%+v, %v", res, err)
	}
}
