package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/fleet/fleettest"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ternd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	p := writeConfig(t, `
device: pi-001
modules:
  - name: relay
    path: relay.wasm
    grants: {gpio: [GPIO17]}
    config: {lines: {heater: GPIO17}}
`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fleet != "default" || c.Board != "sim" || c.DataDir != "/var/lib/tern" || c.LogLevel != "info" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.DataDir != "/var/lib/tern" {
		t.Errorf("data_dir %q, want the default", c.DataDir)
	}
	rel, err := LoadConfig(writeConfig(t, "device: ok\ndata_dir: ../state\ncache_dir: cache\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(rel.DataDir) || filepath.Base(rel.DataDir) != "state" || !filepath.IsAbs(rel.CacheDir) {
		t.Errorf("data_dir %q, cache_dir %q: want them absolute, relative to the config file", rel.DataDir, rel.CacheDir)
	}
	if c.Modules[0].Path != filepath.Join(filepath.Dir(p), "relay.wasm") {
		t.Errorf("module path %q not made relative to the config file", c.Modules[0].Path)
	}
	if got := c.Modules[0].Grants.GPIO; len(got) != 1 || got[0] != "GPIO17" {
		t.Errorf("grants = %v", got)
	}
	raw, err := moduleConfigJSON(c.Modules[0].Config)
	if err != nil || string(raw) != `{"lines":{"heater":"GPIO17"}}` {
		t.Errorf("module config = %s, %v", raw, err)
	}
}

func TestLoadConfigJSON(t *testing.T) {
	if _, err := LoadConfig(writeConfig(t, `{"device": "pi-002", "fleet": "lab"}`)); err != nil {
		t.Fatal(err)
	}
}

// A Config written out as JSON (as the testbench writes its agents') loads
// back with every field, durations included.
func TestConfigRoundTrip(t *testing.T) {
	in := Config{Device: "pi-003", Fleet: "lab", OutboxLimit: 7, UpdateHealthTimeout: Duration(90 * time.Second)}
	for _, c := range []Config{{Device: "pi-003"}, in} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoadConfig(writeConfig(t, string(b)))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if want := c.withDefaults(); got.UpdateHealthTimeout != want.UpdateHealthTimeout || got.OutboxLimit != want.OutboxLimit || got.Fleet != want.Fleet {
			t.Errorf("%s loaded as %+v", b, got)
		}
	}
	c, err := LoadConfig(writeConfig(t, "device: ok\nupdate_health_timeout: 90s\n"))
	if err != nil || time.Duration(c.UpdateHealthTimeout) != 90*time.Second {
		t.Errorf("update_health_timeout: 90s = %v, %v", c.UpdateHealthTimeout, err)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`fleet: x`, "device: required"},
		{`device: "a/b"`, "device"},
		{`device: ok
fleet: "+"`, "fleet"},
		{`device: ok
log_level: loud`, `log_level: "loud"`},
		{`device: ok
modules: [{path: x.wasm}]`, "modules[0]: name is required"},
		{`device: ok
modules: [{name: a}, {name: a}]`, "listed twice"},
		{`device: [`, "not valid YAML"},
		{`device: ok
trusted_keys: ["tern-ed25519-private AAAA"]`, "trusted_keys[0]: signing: public key: this is a private key"},
		{`device: ok
update_health_timeout: 90`, `line 2: update_health_timeout: "90" is not a duration; write it with a unit`},
		{`device: ok
module_limits:
  call_timeout: 2`, `line 3: module_limits.call_timeout: "2" is not a duration`},
		{`device: ok
boot_grace: -1s`, "boot_grace: -1s is negative"},
		{`device: ok
update_health_timeout: -1s`, "update_health_timeout: -1s is negative"},
		{`device: ok
update_policy: {windows: [{days: [someday], from: "02:00", to: "04:00"}]}`, `update_policy.windows[0]: window: bad window: day "someday" is not a day of the week`},
		{`device: ok
update_policy: {windows: [{from: "25:00"}]}`, "update_policy.windows[0]"},
		{`device: ok
update_policy: {windows: [{from: "02:00", zone: Mars/Olympus}]}`, "update_policy.windows[0]"},
		{`device: ok
update_policy: {defer_max: soon}`, `update_policy.defer_max: "soon": want a duration such as 30m or 2h`},
		{`device: ok
update_policy: {windows: [{}, {}, {}, {}, {}, {}, {}, {}, {}]}`, "update_policy.windows: 9 windows, over the limit of 8"},
		{`device: ok
log_format: xml`, `log_format: "xml" is not text or json`},
		{`device: ok
metrics: {listen: "0.0.0.0:9101"}`, `metrics.listen: "0.0.0.0:9101" is not a loopback address: /metrics has no authentication`},
		{`device: ok
metrics: {listen: ":9101"}`, `metrics.listen: ":9101" is not a loopback address`},
		{`device: ok
metrics: {listen: "127.0.0.1"}`, `metrics.listen: "127.0.0.1" is not host:port`},
		{`device: ok
metrics: {listen: "127.0.0.1:http"}`, `metrics.listen: "127.0.0.1:http": port "http" is not a number`},
		{`device: ok
metrics: {allow_remote: true}`, "metrics.allow_remote: set, but there is no metrics.listen"},
		{`device: ok
metrics: {textfile: /var/lib/node_exporter/textfile_collector/ternd.txt}`, "metrics.textfile: \"/var/lib/node_exporter/textfile_collector/ternd.txt\": node_exporter's textfile collector reads only files named *.prom"},
		{`device: ok
metrics: {textfile: /tmp/ternd.prom, interval: 100ms}`, "metrics.interval: 100ms is under 1s"},
		{`device: ok
metrics: {interval: 30s}`, "metrics.interval: set, but there is no metrics.textfile"},
		{`device: ok
metrics: {listen: "127.0.0.1:9101", allow_remot: true}`, "allow_remot"},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: err = %v, want it to mention %q", tc.body, err, tc.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestCheckStore(t *testing.T) {
	var out strings.Builder
	if err := CheckStore(t.TempDir(), 500, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "all 500 read back") {
		t.Fatalf("output %q", out.String())
	}
}

func TestTLSConfig(t *testing.T) {
	ca := fleettest.NewCA(t, "fleet CA")
	files := ca.Client(t, "pi-001")
	other := ca.Client(t, "pi-002")
	dir := filepath.Dir(files.Cert) // the config sits beside the files and names them relatively
	p := filepath.Join(dir, "ternd.yaml")
	body := fmt.Sprintf("device: pi-001\nbroker: mqtts://broker.example\ntls: {ca: %s, cert: %s, key: %s, server_name: broker.local}\n",
		filepath.Base(files.CA), filepath.Base(files.Cert), filepath.Base(files.Key))
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	files.ServerName = "broker.local"
	if c.TLS != files {
		t.Errorf("tls = %+v, want %+v (paths relative to the config file)", c.TLS, files)
	}

	for _, tc := range []struct{ body, want string }{
		{"device: ok\nbroker: ssl://b", `no CA file to verify the broker with; set the CA that signed the broker's certificate (ca), or "system"`},
		{"device: ok\ntls: {ca: system}", "tls: set, but there is no broker"},
		{"device: ok\nbroker: tcp://a\nbrokers: [tcp://b]", "broker and brokers are both set"},
		{"device: ok\nbrokers: [tcp://a, ssl://b]", `no CA file to verify the broker with`},
		{"device: ok\nbrokers: [tcp://a, b:1883]", `scheme "b" is not supported`},
		{"device: ok\nbroker: tcp://b\ntls: {ca: system}", "plain TCP; use ssl://host:8883"},
		{"device: ok\nbroker: b:1883", `scheme "b" is not supported; use tcp://host:port`},
		{"device: ok\nbroker: ssl://b\ntls: {ca: missing.pem}", "cannot read the CA file: open " + filepath.Join(dir, "missing.pem")},
		{"device: ok\nbroker: ssl://b\ntls: {ca: " + files.Key + "}", "holds no PEM certificate"},
		{"device: ok\nbroker: ssl://b\ntls: {ca: system, cert: " + files.Cert + "}", "has no key; set the key file too"},
		{"device: ok\nbroker: ssl://b\ntls: {ca: system, cert: " + files.Cert + ", key: " + other.Key + "}", "the key must be the one the certificate was issued for"},
	} {
		p := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: err = %v, want it to mention %q", tc.body, err, tc.want)
		}
	}
}

// A misspelt key is an error naming the key, its line and the key meant,
// at any depth: ignored, brokr: would run offline, moduels: with no
// modules, and a misspelt trusted_keys would turn signature checks off.
func TestConfigUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"device: pi-001\nbrokr: tcp://b:1883\n", `line 2: unknown key "brokr" (did you mean "broker"?)`},
		{"device: pi-001\nmoduels: []\n", `line 2: unknown key "moduels" (did you mean "modules"?)`},
		{"device: pi-001\ntrusted_key: [x]\n", `line 2: unknown key "trusted_key" (did you mean "trusted_keys"?)`},
		{"device: pi-001\nmodules:\n  - name: relay\n    grant: {gpio: [GPIO17]}\n", `line 4: unknown key "grant" (did you mean "grants"?)`},
		{"device: pi-001\nmodule_limits: {call_timout: 5s}\n", `line 2: unknown key "call_timout" (did you mean "call_timeout"?)`},
		{"device: pi-001\nflux_capacitor: on\n", `line 2: unknown key "flux_capacitor"; fix or remove`},
	} {
		_, err := LoadConfig(writeConfig(t, tc.body))
		if !errors.Is(err, ErrUnknownKeys) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want one naming %s", tc.body, err, tc.want)
		}
	}
}

// After a newer ternd was rolled back, the packaged one must start with a
// configuration written for the newer one: unknown keys are warnings then.
func TestConfigUnknownKeysAfterRollback(t *testing.T) {
	dir := t.TempDir()
	p := writeConfig(t, fmt.Sprintf("device: pi-001\ndata_dir: %s\nnew_option: 3\n", dir))
	if _, err := LoadConfig(p); !errors.Is(err, ErrUnknownKeys) {
		t.Fatalf("before any update: err = %v, want unknown keys", err)
	}
	if err := AgentDir(Config{DataDir: dir}).Save(update.State{Phase: update.PhaseRolledBack, Version: 2}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatalf("after a rollback: %v", err)
	}
	if c.Device != "pi-001" || len(c.Ignored) != 1 || !strings.Contains(c.Ignored[0], `"new_option"`) {
		t.Fatalf("after a rollback: device %q, ignored %q", c.Device, c.Ignored)
	}
}

func TestCheckConfigGrantsAgainstTheBoard(t *testing.T) {
	ok := writeConfig(t, "device: pi-001\nboard: rpi4\nmodules:\n  - name: relay\n    grants: {gpio: [GPIO17@10/s]}\n")
	if err := CheckConfig(ok); err != nil {
		t.Fatalf("GPIO17 on a Pi 4: %v", err)
	}
	bad := writeConfig(t, "device: pi-001\nboard: rpi4\nmodules:\n  - name: relay\n    grants: {gpio: [GPIO99]}\n")
	if err := CheckConfig(bad); err == nil || !strings.Contains(err.Error(), `grants.gpio "GPIO99": board rpi4 has no such line`) {
		t.Fatalf("GPIO99 on a Pi 4: err = %v, want it named", err)
	}
}

// Good metrics and log settings load: a loopback listener (or any, with
// allow_remote), a textfile relative to the config file, json logs.
func TestMetricsConfig(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:9101", "[::1]:9101", "localhost:0"} {
		if _, err := LoadConfig(writeConfig(t, "device: ok\nmetrics: {listen: \""+listen+"\"}\n")); err != nil {
			t.Errorf("listen %s: %v", listen, err)
		}
	}
	if _, err := LoadConfig(writeConfig(t, "device: ok\nmetrics: {listen: \"0.0.0.0:9101\", allow_remote: true}\n")); err != nil {
		t.Errorf("allow_remote: %v", err)
	}
	path := writeConfig(t, "device: ok\nlog_format: json\nmetrics: {textfile: prom/ternd.prom, interval: 30s}\n")
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(path), "prom", "ternd.prom"); c.Metrics.Textfile != want || c.Metrics.interval() != 30*time.Second || c.LogFormat != "json" {
		t.Errorf("metrics %+v, log format %q; want textfile %s, interval 30s, json", c.Metrics, c.LogFormat, want)
	}
}
