package daemon

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/api"
)

// brokers are the broker addresses: broker, or brokers.
func (c Config) brokers() []string {
	if c.Broker != "" {
		return []string{c.Broker}
	}
	return c.Brokers
}

// Config is ternd's configuration file (YAML or JSON, same field names).
type Config struct {
	// Device is this device's id in the fleet. Required.
	Device string `yaml:"device" json:"device"`
	// Fleet is the fleet's name. Default "default".
	Fleet string `yaml:"fleet" json:"fleet"`
	// Broker is the MQTT broker's URL, e.g. tcp://broker.local:1883, or
	// ssl://broker.local:8883 for TLS. Empty runs offline: the agent
	// pursues its stored target alone.
	Broker string `yaml:"broker" json:"broker"`
	// Brokers, instead of broker, lists the nodes of a clustered broker
	// (e.g. a NATS cluster): ternd connects to one and, when it loses it,
	// tries the next first.
	Brokers []string `yaml:"brokers" json:"brokers"`
	// TLS names the PEM files for an ssl:// broker: ca (required; the CA
	// that signed the broker's certificate, or "system"), cert and key
	// (the device's client certificate, common name = device id), and an
	// optional server_name. Relative paths are relative to the config
	// file. The files are read at every connect.
	TLS fleet.TLSFiles `yaml:"tls" json:"tls"`
	// TopicPrefix is the first topic level. Default "tern".
	TopicPrefix string `yaml:"topic_prefix" json:"topic_prefix"`
	// Board names the board definition (see boards.Names). Default "sim".
	Board string `yaml:"board" json:"board"`
	// DataDir holds the store, the compilation cache and updated ternd
	// binaries. Default /var/lib/tern. Relative paths are relative to the
	// config file.
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// Store is the store backend: badger (the default on 64-bit boards) or
	// bolt (the default on 32-bit ones; smaller in memory, slower to
	// write). Empty: this build's default.
	Store string `yaml:"store" json:"store"`
	// CacheDir holds compiled modules. Default DataDir/cache. Agents of
	// one machine (the testbench's) may share one.
	CacheDir string `yaml:"cache_dir" json:"cache_dir"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level" json:"log_level"`
	// LogFormat is text (the default: key=value lines) or json (one JSON
	// object a line). Under journald either gets priority prefixes, and
	// text lines no time of their own (docs/observability.md, "Logs").
	LogFormat string `yaml:"log_format" json:"log_format"`
	// Metrics writes ternd's metrics for Prometheus: a node_exporter
	// textfile, a /metrics listener, or both (docs/observability.md).
	// The state report carries their summary whatever this says.
	Metrics MetricsConfig `yaml:"metrics" json:"metrics"`
	// BrokerUsername and BrokerPassword log in to a broker that requires
	// it; with the shipped ACL the username is the device id.
	BrokerUsername string `yaml:"broker_username" json:"broker_username"`
	BrokerPassword string `yaml:"broker_password" json:"broker_password"`
	// Groups are the groups this device belongs to, lowest precedence
	// first: it pursues their targets combined, then its own over them.
	Groups []string `yaml:"groups" json:"groups"`
	// Facts are what this device says about itself, beside the facts
	// ternd knows (device, board, arch, group), for conditional target
	// layers to match (docs/mqtt.md, "Layers"): e.g. site: mill. Names
	// are 1 to 64 characters of A-Z a-z 0-9 . _ -; values 1 to 64 bytes.
	Facts map[string]string `yaml:"facts" json:"facts"`
	// Strict makes targets strict: what a target does not name under the
	// objects it names is removed, where a job can delete it.
	Strict bool `yaml:"strict" json:"strict"`
	// AllOrNothing: when part of a target cannot be reached, run nothing
	// (plan.failed) instead of reaching the rest (plan.partial).
	AllOrNothing bool `yaml:"all_or_nothing" json:"all_or_nothing"`
	// TrustedKeys are the operator public keys ("tern-ed25519-public ...",
	// from tern keys generate) modules must be signed with. Empty: unsigned
	// modules are accepted, for development.
	TrustedKeys []string `yaml:"trusted_keys" json:"trusted_keys"`
	// Modules are the job modules this device runs.
	Modules []ModuleConfig `yaml:"modules" json:"modules"`
	// ClockSync says how ternd knows the wall clock is right, which jobs
	// with a wall-clock time wait for (docs/jobs.md): "auto" (the
	// default) when the kernel says NTP synchronised it or
	// systemd-timesyncd says it did; "assume" always (a board with a
	// battery-backed clock, or a container whose host keeps time).
	ClockSync string `yaml:"clock_sync" json:"clock_sync"`
	// UpdatePolicy holds disruptive changes a rollout governs until a
	// maintenance window opens and the modules' busy sensors clear
	// (docs/rollouts.md).
	UpdatePolicy UpdatePolicy `yaml:"update_policy" json:"update_policy"`
	// OutboxLimit is how many event reports the device keeps while the
	// broker is unreachable; beyond it the oldest go (and an events.dropped
	// event says how many). Default 100000, about 30 MB of store.
	OutboxLimit int `yaml:"outbox_limit" json:"outbox_limit"`
	// MaxReport is the largest report, in bytes, the device sends whole
	// (fleet.DeviceOptions.MaxReport): an event over it goes as a marker
	// with "truncated": true, a state report without its state. Set it
	// below the broker's message size limit when that is under 256 KiB
	// (Mosquitto's message_size_limit or max_packet_size). Default
	// 262144, least 12288.
	MaxReport int `yaml:"max_report" json:"max_report"`
	// Sim is the simulated world of a sim board (sim.BoardSpec): I2C
	// chips, rooms heated through a GPIO line, serial devices, wires.
	// Only with board: sim.
	Sim sim.BoardSpec `yaml:"sim" json:"sim"`
	// UpdateHealthTimeout is how long a new ternd binary (an agent
	// release) has to prove healthy: connected to the broker and its agent
	// idle (converged, or no target). Otherwise it is rolled back. Default
	// 2m; in YAML a duration such as 90s.
	UpdateHealthTimeout Duration `yaml:"update_health_timeout" json:"update_health_timeout"`
	// BootGrace is how long ternd, at start, waits for the targets
	// retained on the broker before it acts on the target it stored, so
	// that a newer target queued while it was down is the first it acts
	// on (no relay switched on and off again at boot). It waits only
	// while the broker is reachable: offline, or with no broker, it acts
	// at once. Default 3s; 0s acts at once always.
	BootGrace *Duration `yaml:"boot_grace" json:"boot_grace"`
	// Ignored are keys this ternd does not know, kept as warnings only
	// after a newer ternd was rolled back here (they may be its); any
	// other time an unknown key is an error. Not a configuration key.
	Ignored []string `yaml:"-" json:"-"`
	// ModuleLimits bound what a module may cost the device.
	ModuleLimits ModuleLimits `yaml:"module_limits" json:"module_limits"`
	// SharedGrants names hardware more than one module may be granted
	// ("GPIO4", "i2c1:0x48", "ttyS0"); ternd refuses to start when two
	// modules are granted anything else that is the same.
	SharedGrants []string `yaml:"shared_grants" json:"shared_grants"`
}

// MetricsConfig says where ternd's metrics go besides the state report.
// Zero: nowhere else.
type MetricsConfig struct {
	// Textfile is a file for node_exporter's textfile collector, e.g.
	// /var/lib/node_exporter/textfile_collector/ternd.prom (its name must
	// end in .prom), written atomically every Interval. Relative paths
	// are relative to the config file.
	Textfile string `yaml:"textfile" json:"textfile"`
	// Interval is how often the textfile is written. Default 15s, least 1s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Listen is a loopback address (127.0.0.1:9101, [::1]:9101,
	// localhost:9101) where ternd serves GET /metrics.
	Listen string `yaml:"listen" json:"listen"`
	// AllowRemote lets Listen be any address. /metrics has no
	// authentication, and says what the device runs and how it fares:
	// keep it on loopback unless the network is yours alone.
	AllowRemote bool `yaml:"allow_remote" json:"allow_remote"`
}

// defaultMetricsInterval is MetricsConfig.Interval's default.
const defaultMetricsInterval = 15 * time.Second

// interval is Interval, or its default.
func (m MetricsConfig) interval() time.Duration {
	if m.Interval == 0 {
		return defaultMetricsInterval
	}
	return time.Duration(m.Interval)
}

func (m MetricsConfig) validate() []error {
	var errs []error
	if m.Textfile != "" && !strings.HasSuffix(m.Textfile, ".prom") {
		errs = append(errs, fmt.Errorf("metrics.textfile: %q: node_exporter's textfile collector reads only files named *.prom; name it e.g. ternd.prom", m.Textfile))
	}
	if m.Interval != 0 && time.Duration(m.Interval) < time.Second {
		errs = append(errs, fmt.Errorf("metrics.interval: %v is under 1s; leave it out for the default (15s)", m.Interval))
	}
	if m.Interval != 0 && m.Textfile == "" {
		errs = append(errs, errors.New("metrics.interval: set, but there is no metrics.textfile to write; set textfile, or remove interval"))
	}
	if m.AllowRemote && m.Listen == "" {
		errs = append(errs, errors.New("metrics.allow_remote: set, but there is no metrics.listen; set listen, or remove allow_remote"))
	}
	if m.Listen != "" {
		if err := checkListen(m.Listen, m.AllowRemote); err != nil {
			errs = append(errs, fmt.Errorf("metrics.listen: %w", err))
		}
	}
	return errs
}

// checkListen checks a /metrics address: host:port, and a loopback host
// unless remote.
func checkListen(addr string, remote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:9101): %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if remote {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: /metrics has no authentication and tells whoever reaches it what the device runs and how it fares, so ternd serves it on loopback only (127.0.0.1:9101, [::1]:9101; scrape it through node_exporter's textfile, a tunnel or a local agent), unless metrics.allow_remote: true says the network is yours alone", addr)
}

// ModuleLimits bound what one module may cost the device. Zero fields take
// the defaults.
type ModuleLimits struct {
	// CallTimeout bounds one call into a module (a job's condition, effect
	// or run). Default 10s.
	CallTimeout Duration `yaml:"call_timeout" json:"call_timeout"`
	// SensorTimeout bounds one sensor call. Default call_timeout.
	SensorTimeout Duration `yaml:"sensor_timeout" json:"sensor_timeout"`
	// MemoryMiB caps each module instance's linear memory. Default 128.
	MemoryMiB int `yaml:"memory_mib" json:"memory_mib"`
	// CompileTimeout bounds compiling a new module (in a child process).
	// Default 1m.
	CompileTimeout Duration `yaml:"compile_timeout" json:"compile_timeout"`
	// CompileMemoryMiB bounds the memory compiling a module may take.
	// Default 1024.
	CompileMemoryMiB int `yaml:"compile_memory_mib" json:"compile_memory_mib"`
}

func (l ModuleLimits) validate() []error {
	var errs []error
	for name, d := range map[string]Duration{"call_timeout": l.CallTimeout, "sensor_timeout": l.SensorTimeout, "compile_timeout": l.CompileTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("module_limits.%s: %v is negative; leave it out for the default", name, d))
		}
	}
	if l.MemoryMiB < 0 || l.MemoryMiB > 4096 {
		errs = append(errs, fmt.Errorf("module_limits.memory_mib: %d is outside 1..4096 (a module's memory is 32-bit); leave it out for the default (128)", l.MemoryMiB))
	}
	if l.CompileMemoryMiB < 0 || l.CompileMemoryMiB > 0 && l.CompileMemoryMiB < 64 {
		errs = append(errs, fmt.Errorf("module_limits.compile_memory_mib: %d is below 64, too little to compile any module; leave it out for the default (1024)", l.CompileMemoryMiB))
	}
	return errs
}

// bootGrace is BootGrace, or its default if unset.
func (c Config) bootGrace() time.Duration {
	if c.BootGrace == nil {
		return defaultBootGrace
	}
	return time.Duration(*c.BootGrace)
}

// defaultBootGrace is Config.BootGrace's default: enough for a connect,
// a subscribe and the retained targets on a slow link, short enough that
// a device whose broker hangs is not idle for long.
const defaultBootGrace = 3 * time.Second

// Duration is a time.Duration written as text in the configuration
// ("90s", "2m"), in YAML and JSON alike. A bare number other than 0 is
// refused: without a unit it would be ambiguous.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalYAML implements yaml.Unmarshaler, so that a bad value names its
// line (decodeStrict adds the key).
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if err := d.UnmarshalText([]byte(node.Value)); err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	return nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it with a unit, e.g. 90s or 2m", b)
	}
	*d = Duration(v)
	return nil
}

// String returns the duration as time.Duration prints it.
func (d Duration) String() string { return time.Duration(d).String() }

// ModuleConfig is one module on the device.
type ModuleConfig struct {
	// Name is the module's name (its manifest's).
	Name string `yaml:"name" json:"name"`
	// Path is the .wasm file. Relative paths are relative to the config
	// file. Empty, or missing at start: the version installed earlier.
	Path string `yaml:"path" json:"path"`
	// Grants are the hardware resources the module may use.
	Grants api.Grants `yaml:"grants" json:"grants"`
	// Expand names modules whose jobs this module's methods may expand
	// into although that module's hardware is not granted to this one.
	Expand []string `yaml:"expand" json:"expand"`
	// Config is passed to the module with every call.
	Config any `yaml:"config" json:"config"`
}

// LoadConfig reads and checks a configuration file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("ternd: reading configuration: %w", err)
	}
	var c Config
	_, err = decodeStrict(b, &c, false)
	if errors.Is(err, ErrUnknownKeys) && rolledBack(BootDataDir(path)) {
		// A newer ternd ran here and was rolled back: the keys may be
		// its, and this binary must start all the same (RATIONALE.md,
		// "Strict configuration").
		c.Ignored, err = decodeStrict(b, &c, true)
	}
	switch {
	case errors.Is(err, ErrUnknownKeys):
		return Config{}, fmt.Errorf("ternd: %s: %w; fix or remove them (ternd check-config %s checks a file)", path, err, path)
	case errors.Is(err, errBadValue):
		return Config{}, fmt.Errorf("ternd: %s: %w", path, err)
	case err != nil:
		return Config{}, fmt.Errorf("ternd: %s is not valid YAML or JSON: %w", path, err)
	}
	base := filepath.Dir(path)
	for _, p := range []*string{&c.TLS.CA, &c.TLS.Cert, &c.TLS.Key} {
		if *p != "" && *p != fleet.SystemRoots && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for _, p := range []*string{&c.DataDir, &c.CacheDir, &c.Metrics.Textfile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	for i := range c.Modules {
		if p := c.Modules[i].Path; p != "" && !filepath.IsAbs(p) {
			c.Modules[i].Path = filepath.Join(base, p)
		}
	}
	if err := c.withDefaults().Validate(); err != nil {
		return Config{}, fmt.Errorf("ternd: %s: %w", path, err)
	}
	return c.withDefaults(), nil
}

func (c Config) withDefaults() Config {
	if c.Fleet == "" {
		c.Fleet = "default"
	}
	if c.Board == "" {
		c.Board = "sim"
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/tern"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(c.DataDir, "cache")
	}
	if c.BootGrace == nil {
		d := Duration(defaultBootGrace)
		c.BootGrace = &d
	}
	if c.UpdateHealthTimeout == 0 {
		c.UpdateHealthTimeout = Duration(2 * time.Minute)
	}
	return c
}

// Validate says what is wrong with a configuration, all at once.
func (c Config) Validate() error {
	var errs []error
	if c.BootGrace != nil && *c.BootGrace < 0 {
		errs = append(errs, fmt.Errorf("boot_grace: %v is negative; leave it out for the default (3s), or 0s to act at once", *c.BootGrace))
	}
	if c.UpdateHealthTimeout < 0 {
		errs = append(errs, fmt.Errorf("update_health_timeout: %v is negative; leave it out for the default (2m)", c.UpdateHealthTimeout))
	}
	if c.ClockSync != "" && c.ClockSync != "auto" && c.ClockSync != "assume" {
		errs = append(errs, fmt.Errorf("clock_sync: %q: want auto (the default: NTP says the clock is right) or assume (a board with a real-time clock)", c.ClockSync))
	}
	if _, _, err := c.UpdatePolicy.parse(); err != nil {
		errs = append(errs, err)
	}
	if c.OutboxLimit < 0 {
		errs = append(errs, fmt.Errorf("outbox_limit: %d is negative; leave it out for the default (%d)", c.OutboxLimit, fleet.DefaultOutboxLimit))
	}
	if c.MaxReport != 0 && (c.MaxReport < 12<<10 || c.MaxReport > fleet.MaxPayload) {
		errs = append(errs, fmt.Errorf("max_report: %d bytes; use 12288 to %d (set it below the broker's message size limit), or leave it out for %d", c.MaxReport, fleet.MaxPayload, fleet.MaxPayload))
	}
	if c.Device == "" {
		errs = append(errs, errors.New("device: required (this device's id, e.g. pi-001)"))
	} else if err := fleet.ValidID(c.Device); err != nil {
		errs = append(errs, fmt.Errorf("device: %w", err))
	}
	if err := fleet.ValidID(c.Fleet); err != nil {
		errs = append(errs, fmt.Errorf("fleet: %w", err))
	}
	switch {
	case c.Broker != "" && len(c.Brokers) > 0:
		errs = append(errs, errors.New("broker and brokers are both set; give one broker, or the nodes of a cluster under brokers"))
	case c.Broker != "" || len(c.Brokers) > 0:
		for _, b := range c.brokers() {
			if err := c.TLS.Check(b); err != nil {
				errs = append(errs, err)
				break
			}
		}
	case !c.TLS.IsZero():
		errs = append(errs, errors.New("tls: set, but there is no broker; set broker: ssl://HOST:8883, or remove tls"))
	}
	seen := map[string]bool{}
	for i, m := range c.Modules {
		if m.Name == "" {
			errs = append(errs, fmt.Errorf("modules[%d]: name is required", i))
		} else if seen[m.Name] {
			errs = append(errs, fmt.Errorf("modules[%d]: module %s is listed twice", i, m.Name))
		}
		seen[m.Name] = true
		if _, err := moduleConfigJSON(m.Config); err != nil {
			errs = append(errs, fmt.Errorf("modules[%d].config: %w", i, err))
		}
	}
	for i, g := range c.Groups {
		if err := fleet.ValidID(g); err != nil {
			errs = append(errs, fmt.Errorf("groups[%d]: %w", i, err))
		}
	}
	errs = append(errs, validateFacts(c.Facts)...)
	errs = append(errs, validateSim(c.Sim, c.Board)...)
	errs = append(errs, c.ModuleLimits.validate()...)
	if _, err := c.Trust(); err != nil {
		errs = append(errs, err)
	}
	switch c.Store {
	case "", "badger", "bolt":
	default:
		errs = append(errs, fmt.Errorf("store: %q is not a store backend; use badger or bolt, or leave it out for this build's default", c.Store))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format: %q is not text or json; leave it out for text", c.LogFormat))
	}
	errs = append(errs, c.Metrics.validate()...)
	return errors.Join(errs...)
}

// Trust is the trust store the trusted keys make.
func (c Config) Trust() (signing.Trust, error) {
	var keys []ed25519.PublicKey
	for i, k := range c.TrustedKeys {
		pub, err := signing.ParsePublic(k)
		if err != nil {
			return nil, fmt.Errorf("trusted_keys[%d]: %w (copy the line tern keys generate prints)", i, err)
		}
		keys = append(keys, pub)
	}
	return signing.NewTrust(keys...), nil
}

func moduleConfigJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}
