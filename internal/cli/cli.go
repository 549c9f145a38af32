package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFail    = 1
	ExitUsage   = 2
	ExitTimeout = 3
	// ExitNotConverged is tern status's answer when some listed device is
	// not converged, or not online.
	ExitNotConverged = 4
)

const usage = `tern: the tern operator command

Usage:
  tern broker [--listen ADDR] [--cert F --cert-key F [--ca F]]
                                               run a development MQTT broker (TLS with --cert)
  tern broker acl --inventory FILE [--fleet NAME] [--prefix P] [--operator USER]...
                                               print a Mosquitto acl_file for the fleet's devices
  tern push   [fleet flags] --device ID | --group NAME [--key K.key] [--version N] FILE|-|JSON
                                               push a (signed) target to a device or a group
  tern sign   [--fleet NAME] --device ID | --group NAME --key K.key [--version N] FILE|-|JSON
                                               print a signed target envelope, to publish elsewhere
  tern release [fleet flags] --module NAME --key K.key [--version N] [--config ternd.yaml]
               [--dry-run] M.wasm              release M.wasm to the fleet as module NAME
  tern status [fleet flags] [--group G | --device ID] [--json] [--wait D]
                                               a table of devices: online, version, converged, errors
  tern watch  [fleet flags] [--group G | --device ID] [--version N] [--until-converged]
              [--timeout D] [--json]           live state changes and events; rollout progress
  tern plan   --target FILE|-|JSON [--state FILE|JSON] --module M.wasm...
              [--config NAME=JSON] [--strict] [--format text|mermaid|dot|json]
                                               preview offline what a device would do
  tern module build DIR [-o OUT.wasm]          build a job module from Go (manifest embedded)
  tern module sign --key K.key M.wasm          sign a module for devices that trust K
  tern module inspect M.wasm [--trust K.pub]   print a module's manifest, hash and signer
  tern keys generate NAME | list [--dir DIR]   operator signing keys
  tern testbench run FILE.yaml... [--junit OUT.xml] [--json]   run testbench scenarios
  tern version                                 print the version
  tern help COMMAND                            a command's flags and examples

Fleet flags:
  --broker URL   MQTT broker (default tcp://127.0.0.1:1883, or $TERN_BROKER)
  --fleet NAME   fleet name (default "default", or $TERN_FLEET)
  --prefix P     topic prefix (default "tern")
  --ca FILE      CA that signed the broker's certificate, for ssl:// brokers ($TERN_CA);
                 "system" trusts the system's roots
  --cert FILE    client certificate, PEM ($TERN_CERT); with Mosquitto's
                 use_identity_as_username its common name is the username
  --cert-key F   the client certificate's private key, PEM ($TERN_CERT_KEY)
  --server-name N  name the broker's certificate must carry, if not the URL's host

Examples:
  tern broker --listen 127.0.0.1:1883
  tern broker acl --fleet demo --inventory inventory.yaml > /etc/mosquitto/tern.acl
  tern push --broker ssl://broker:8883 --ca ca.pem --cert ops.pem --cert-key ops.key \
            --fleet demo --group heaters '{"relays":{"heater":true}}'
  tern push --fleet demo --device pi-001 '{"relays":{"heater":true}}'
  tern watch --fleet demo --device pi-001 --until-converged --timeout 60s
  tern status --fleet demo --group heaters
  tern watch --fleet demo --group heaters --version 7 --until-converged --timeout 10m
  tern plan --module relay.wasm --config 'relay={"lines":{"heater":"GPIO17"}}' \
            --state '{"relays":{"heater":false}}' --target '{"relays":{"heater":true}}'

Exit status:
  0  done; for status: every listed device converged and online
  1  failed (the message says why)
  2  usage: a flag or argument is wrong (the message says which)
  3  timeout (watch --timeout)
  4  status: some listed device is not converged, or not online

Run 'tern help COMMAND' or 'tern COMMAND --help' for a command's flags and examples.
`

// Main runs the tern command with args (without the program name).
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, stdout, stderr)
}

// MainContext is Main that stops when ctx is done, as on an interrupt
// (commands that wait, such as watch, end then with exit status 0).
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmd, args := args[0], args[1:]
	errOut := stderr
	if wantsHelp(args) {
		stderr = stdout // asked for: help goes to stdout, exit 0
	}
	var err error
	switch cmd {
	case "broker":
		err = broker(ctx, args, stdout, stderr)
	case "push":
		err = push(ctx, args, stdout, stderr)
	case "release":
		err = release(ctx, args, stdout, stderr)
	case "status":
		err = status(ctx, args, stdout, stderr)
	case "sign":
		err = sign(ctx, args, stdout, stderr)
	case "agent":
		err = agentCmd(ctx, args, stdout, stderr)
	case "watch":
		err = watch(ctx, args, stdout, stderr)
	case "module":
		err = module(ctx, args, stdout, stderr)
	case "keys":
		err = keys(args, stdout, stderr)
	case "plan":
		err = planCmd(ctx, args, stdout, stderr)
	case "testbench":
		err = testbenchCmd(ctx, args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("tern"))
	case "help", "-h", "--help":
		if len(args) > 0 && cmd == "help" { // tern help COMMAND [SUBCOMMAND]
			return MainContext(ctx, append(args, "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(errOut, "tern: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	code := exitCode(err, stderr)
	if code == ExitUsage {
		fmt.Fprintln(stderr, usageHint(cmd))
	}
	return code
}

type usageError struct{ error }
type timeoutError struct{ error }
type notConvergedError struct{ error }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintln(stderr, "tern:", err)
	var ue usageError
	var te timeoutError
	switch {
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &te):
		return ExitTimeout
	case errors.As(err, new(notConvergedError)):
		return ExitNotConverged
	}
	return ExitFail
}

// fleetFlags are the flags every command that talks to the fleet takes.
type fleetFlags struct {
	broker, fleet, prefix string
	tls                   fleet.TLSFiles
}

// register adds the fleet flags. The client key is --cert-key, not --key:
// --key is the signing key of push and module sign.
func (f *fleetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.broker, "broker", envOr("TERN_BROKER", "tcp://127.0.0.1:1883"), "MQTT broker URL: tcp://host:port, or ssl://host:port for TLS (or $TERN_BROKER)")
	fs.StringVar(&f.fleet, "fleet", envOr("TERN_FLEET", "default"), "fleet name (or $TERN_FLEET)")
	fs.StringVar(&f.prefix, "prefix", "tern", "topic prefix")
	fs.StringVar(&f.tls.CA, "ca", envOr("TERN_CA", ""), `with an ssl:// broker: the CA file that signed the broker's certificate, or "system" (or $TERN_CA)`)
	fs.StringVar(&f.tls.Cert, "cert", envOr("TERN_CERT", ""), "client certificate file, PEM (or $TERN_CERT)")
	fs.StringVar(&f.tls.Key, "cert-key", envOr("TERN_CERT_KEY", ""), "the client certificate's private key file, PEM (or $TERN_CERT_KEY)")
	fs.StringVar(&f.tls.ServerName, "server-name", "", "name the broker's certificate must carry, when not the broker URL's host")
}

func (f *fleetFlags) dial(ctx context.Context) (*fleet.Operator, error) {
	return fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: f.broker, TLS: f.tls, Topics: fleet.Topics{Prefix: f.prefix, Fleet: f.fleet}})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// newFlags makes a command's flag set. Its Usage prints the command's full
// help (see helps) to stderr, which Main points at stdout when the user
// asked for help.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tern "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(stderr, fs, name, synopsis) }
	return fs
}

// parse parses flags that may come before or after the positional
// arguments (tern module build DIR -o OUT), as users type them. Positional
// arguments are left in fs.Args() order via a re-parse.
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	// A wrong flag gets a one-line error and a hint (Main prints both),
	// not the whole help; -h gets the whole help.
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = usage; fs.SetOutput(out) }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				usage()
				return err
			}
			return usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	// Parse the positional arguments alone so fs.Args() returns them.
	return fs.Parse(append([]string{"--"}, positional...))
}

func broker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "acl" {
		return brokerACL(args[1:], stdout, stderr)
	}
	fs := newFlags("broker", "[--listen ADDR] [--cert FILE --cert-key FILE [--ca FILE]] | acl --inventory FILE", stderr)
	listen := fs.String("listen", "127.0.0.1:1883", "address to listen on (host:port; port 0 picks a free one)")
	var files fleet.TLSFiles
	fs.StringVar(&files.Cert, "cert", "", "the broker's certificate, PEM: listen with TLS")
	fs.StringVar(&files.Key, "cert-key", "", "the broker's private key, PEM")
	fs.StringVar(&files.CA, "ca", "", "with --cert: admit only clients with a certificate signed by this CA")
	verbose := fs.Bool("v", false, "log every connection")
	if err := parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var b *fleet.Broker
	var err error
	if files.IsZero() {
		b, err = fleet.NewBroker(*listen, log)
	} else if b, err = fleet.NewTLSBroker(*listen, files, log); err != nil {
		err = usageError{err}
	}
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Close()
	auth := "no authentication"
	if files.CA != "" {
		auth = "client certificates from " + files.CA + ", no ACL"
	}
	fmt.Fprintf(stdout, "tern broker: listening on %s (development only: %s)\n", b.URL(), auth)
	<-ctx.Done()
	return nil
}

// inventory is the file tern broker acl reads: which groups each device
// is in, and optionally the operators' usernames.
type inventory struct {
	Operators []string            `yaml:"operators" json:"operators"`
	Devices   map[string][]string `yaml:"devices" json:"devices"`
}

func brokerACL(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("broker acl", "--inventory FILE [--fleet NAME] [--prefix P]", stderr)
	path := fs.String("inventory", "", "YAML or JSON file: devices: {DEVICE: [GROUP, ...]}, optional operators: [USER, ...] (required)")
	fleetName := fs.String("fleet", envOr("TERN_FLEET", "default"), "fleet name (or $TERN_FLEET)")
	prefix := fs.String("prefix", "tern", "topic prefix")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" || fs.NArg() != 0 {
		fs.Usage()
		return usageError{errors.New("broker acl needs --inventory FILE, e.g. a file with:\n  devices:\n    pi-001: [heaters, floor-2]\n    pi-002: [heaters]")}
	}
	b, err := os.ReadFile(*path)
	if err != nil {
		return fmt.Errorf("reading the inventory: %w", err)
	}
	var inv inventory
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil && !errors.Is(err, io.EOF) {
		return usageError{fmt.Errorf("inventory %s: %w; expected devices: {DEVICE: [GROUP, ...]} and optionally operators: [USER, ...]", *path, err)}
	}
	if len(inv.Devices) == 0 {
		return usageError{fmt.Errorf("inventory %s lists no devices; expected devices: {DEVICE: [GROUP, ...]}", *path)}
	}
	if len(inv.Operators) == 0 {
		inv.Operators = []string{fleet.DefaultOperator}
	}
	acl, err := fleet.MosquittoACL(fleet.Topics{Prefix: *prefix, Fleet: *fleetName}, inv.Operators, inv.Devices)
	if err != nil {
		return usageError{fmt.Errorf("inventory %s: %w", *path, err)}
	}
	_, err = stdout.Write(acl)
	return err
}

func push(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pushOrSign(ctx, "push", args, stdout, stderr)
}

// sign is push without the broker: it prints the signed envelope, for an
// operator who signs on one machine and publishes from another (e.g. with
// mosquitto_pub).
func sign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return pushOrSign(ctx, "sign", args, stdout, stderr)
}

func pushOrSign(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	synopsis := "[fleet flags] --device ID | --group NAME [--key KEY.key] [--version N] FILE|-|JSON"
	if cmd == "sign" {
		synopsis = "[--fleet NAME] [--prefix P] --device ID | --group NAME --key KEY.key [--version N] FILE|-|JSON"
	}
	fs := newFlags(cmd, synopsis, stderr)
	var ff fleetFlags
	ff.register(fs)
	device := fs.String("device", "", "device id (this or --group)")
	group := fs.String("group", "", "group name: every device in the group gets the target")
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the target with (or $TERN_KEY); devices with trusted_keys need it")
	ver := fs.Uint64("version", 0, "target version; default: the current time in milliseconds, which always increases")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*device == "") == (*group == "") || fs.NArg() != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("%s needs one of --device or --group, and one target (a file, - for stdin, or inline JSON)", cmd)}
	}
	if cmd == "sign" && *keyPath == "" {
		return usageError{errors.New("sign needs --key KEY.key (or $TERN_KEY): the operator key to sign with; make one with tern keys generate NAME")}
	}
	name, scope, flagName := *device, fleet.DeviceScope(*device), "--device"
	if *group != "" {
		name, scope, flagName = *group, fleet.GroupScope(*group), "--group"
	}
	if err := fleet.ValidID(name); err != nil {
		return usageError{fmt.Errorf("%s: %w", flagName, err)}
	}
	doc, err := readTarget(fs.Arg(0))
	if err != nil {
		return err
	}
	v := *ver
	if v == 0 {
		v = uint64(time.Now().UnixMilli())
	}
	if err := checkVersionFlag(v); err != nil {
		return err
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Target: doc, Issued: time.Now().UTC()}
	env.SetTopics(topics) // the signature covers them: devices of other fleets refuse it
	if _, err := fleet.ParseTargetEnvelope(mustJSON(env)); err != nil {
		return usageError{err}
	}
	if *keyPath != "" {
		priv, err := signing.ReadPrivate(*keyPath)
		if err != nil {
			return usageError{fmt.Errorf("--key: %w", err)}
		}
		if err := env.Sign(scope, priv); err != nil {
			return err
		}
	}
	if cmd == "sign" {
		topic := topics.DeviceTarget(*device)
		if *group != "" {
			topic = topics.GroupTarget(*group)
		}
		fmt.Fprintf(stdout, "%s\n", mustJSON(env))
		fmt.Fprintf(stderr, "signed target version %d for %s of fleet %s by %s; publish it retained, QoS 1, on %s (devices of other fleets refuse it)\n", v, scope, ff.fleet, env.Key, topic)
		return nil
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	if *group != "" {
		err = op.PushGroupTarget(ctx, *group, env)
	} else {
		err = op.PushTarget(ctx, *device, env)
	}
	if err != nil {
		return err
	}
	signed := "unsigned"
	if env.Key != "" {
		signed = "signed by " + env.Key
	}
	fmt.Fprintf(stdout, "pushed target version %d to %s/%s (%s)\n", v, ff.fleet, scope, signed)
	return nil
}

// checkVersionFlag refuses a --version devices would refuse: above
// fleet.MaxVersion.
func checkVersionFlag(v uint64) error {
	if v > fleet.MaxVersion {
		return usageError{fmt.Errorf("--version %d is above the largest version, %d (2^53-1, the largest whole number every JSON reader carries exactly): devices refuse it; use a smaller one (the default, the time in milliseconds, is far below)", v, fleet.MaxVersion)}
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// readTarget takes a file name, "-" for stdin, or inline JSON.
func readTarget(arg string) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case arg == "-":
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	case strings.HasPrefix(strings.TrimSpace(arg), "{"), strings.HasPrefix(strings.TrimSpace(arg), "["):
		b = []byte(arg)
	default:
		b, err = os.ReadFile(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("reading target: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, usageError{fmt.Errorf("the target must be a JSON object, e.g. '{\"relays\":{\"heater\":true}}': %v", err)}
	}
	return json.RawMessage(b), nil
}

func describeEvent(e fleet.EventReport) string {
	parts := []string{}
	if e.Module != "" {
		parts = append(parts, e.Module+"."+e.Job)
	}
	if e.Path != "" {
		parts = append(parts, e.Path)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	return strings.Join(parts, " ")
}
