package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	"github.com/tern-iot/tern/fleet/devbroker"
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
		fmt.Fprint(stderr, usageText())
		return ExitUsage
	}
	if wantsHelp(args) {
		stderr = stdout // asked for: help goes to stdout, exit 0
	}
	name, err := dispatch(ctx, args, stdout, stderr)
	code := exitCode(err, stderr)
	if code == ExitUsage {
		if name == "help" { // tern help NOSUCHCOMMAND
			name = ""
		}
		fmt.Fprintln(stderr, usageHint(name))
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
	case errors.As(err, new(jobFailedError)):
		return ExitJobFailed
	}
	return ExitFail
}

// dial connects to the broker, once the flags passed check.
func (f *fleetFlags) dial(ctx context.Context) (*fleet.Operator, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	return fleet.DialOperator(ctx, fleet.OperatorOptions{Broker: f.broker, TLS: f.tls, Topics: fleet.Topics{Prefix: f.prefix, Fleet: f.fleet}})
}

// newFlags makes the flag set of the command name (an entry of
// commands). Its Usage prints the command's full help to stderr, which
// Main points at stdout when the user asked for help.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tern "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printHelp(stderr, fs, name) }
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
	fs := newFlags("broker", stderr)
	listen := fs.String("listen", "127.0.0.1:1883", "address to listen on (host:port; port 0 picks a free one)")
	var files fleet.TLSFiles
	fs.StringVar(&files.Cert, "cert", "", "the broker's certificate, PEM: listen with TLS")
	fs.StringVar(&files.Key, "cert-key", "", "the broker's private key, PEM")
	fs.StringVar(&files.CA, "ca", "", "with --cert: admit only clients with a certificate signed by this CA")
	data := fs.String("data", "", "directory to keep sessions and retained messages in, across restarts (default: a temporary one, removed when the broker stops)")
	verbose := fs.Bool("v", false, "log every connection")
	var cluster devbroker.Cluster
	fs.StringVar(&cluster.Listen, "cluster-listen", "", "join a NATS cluster: the host:port this node takes the other nodes' routes on")
	fs.StringVar(&cluster.Node, "node", "", "with --cluster-listen: this node's name, unique in the cluster and the same across restarts")
	fs.StringVar(&cluster.Name, "cluster", "tern", "with --cluster-listen: the cluster's name, the same on every node")
	routes := fs.String("routes", "", "with --cluster-listen: the other nodes' --cluster-listen addresses, comma-separated")
	fs.IntVar(&cluster.Replicas, "replicas", 0, "with --cluster-listen: how many nodes keep each MQTT stream (default: one per node, at most 3)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("broker takes no arguments, got %q; its one subcommand is tern broker acl", fs.Arg(0))}
	}
	if *routes != "" {
		cluster.Routes = strings.Split(*routes, ",")
	}
	if cluster.Listen != "" && *data == "" {
		return usageError{errors.New("broker: a cluster node needs --data DIR: the other nodes count on what it keeps across a restart")}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	b, err := devbroker.Open(*listen, devbroker.Options{DataDir: *data, TLS: files, Logger: log, Cluster: cluster})
	if err != nil {
		return usageError{err}
	}
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	defer b.Close()
	auth := "no authentication"
	if files.CA != "" {
		auth = "client certificates from " + files.CA + ", no ACL"
	}
	fmt.Fprintf(stdout, "tern broker: listening on %s (development only: %s)\n", b.URL(), auth)
	if cluster.Listen != "" {
		fmt.Fprintf(stdout, "tern broker: node %s of cluster %s, routes on %s, to %s\n", cluster.Node, cluster.Name, cluster.Listen, strings.Join(cluster.Routes, ", "))
	}
	if *data != "" {
		fmt.Fprintf(stdout, "tern broker: sessions and retained messages are kept in %s\n", *data)
	} else {
		fmt.Fprintf(stdout, "tern broker: sessions and retained messages are gone when it stops; --data DIR keeps them\n")
	}
	<-ctx.Done()
	return nil
}

// inventory is the file tern broker acl reads: which groups each device
// is in, and optionally the operators' usernames.
type inventory struct {
	Operators []string            `yaml:"operators" json:"operators"`
	Devices   map[string][]string `yaml:"devices" json:"devices"`
}

func brokerACL(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("broker acl", stderr)
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
	b, err := readFileArg("--inventory", *path, "give a YAML or JSON file with devices: {DEVICE: [GROUP, ...]}")
	if err != nil {
		return err
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
	return pushOrSignWith(ctx, cmd, args, stdout, stderr, nil)
}

// pushOrSignWith is push, sign, or, with rf, tern rollout start of a
// target: the push with a rollout policy, after the rollout's control.
func pushOrSignWith(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, rf *rolloutFlags) error {
	fs := newFlags(cmd, stderr)
	var ff fleetFlags
	publish := cmd != "sign"
	if rf != nil {
		rf.register(fs)
	}
	if publish {
		ff.register(fs)
	} else {
		ff.registerTopics(fs) // sign does not connect
	}
	device := fs.String("device", "", "device id (this or --group)")
	group := fs.String("group", "", "group name: every device in the group gets the target")
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the target with (or $TERN_KEY); devices with trusted_keys need it")
	ver := versionVar(fs, "the target's version, which must grow with every push to the device or group; default: the current time in milliseconds, which always grows")
	layersArg := fs.String("layers", "", "conditional layers of the target: a JSON `FILE` or inline array of {\"name\", \"when\", \"target\"} (docs/mqtt.md, Layers); devices too old for layers refuse the target")
	var dry dryRunFlags
	dry.register(fs, cmd)
	replaces := fs.Uint64("replaces", 0, "rebase: the version `HELD` (a runaway one, e.g. 9007199254740991) this target replaces; a device that holds exactly HELD takes this lower version and refuses every version from HELD up (docs/mqtt.md, Taking a device back from a runaway version)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := ver.check(); err != nil {
		return err
	}
	if publish {
		if err := ff.check(); err != nil {
			return err
		}
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
	var err error
	if err = fleet.ValidID(name); err != nil {
		return usageError{fmt.Errorf("%s: %w", flagName, err)}
	}
	var priv ed25519.PrivateKey
	if *keyPath != "" {
		if priv, err = readKey(*keyPath); err != nil {
			return err
		}
	}
	doc, _, err := readDocArg("the target", fs.Arg(0))
	if err != nil {
		return err
	}
	v := ver.v
	if !ver.set {
		v = uint64(time.Now().UnixMilli())
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: v, Replaces: *replaces, Target: doc, Issued: time.Now().UTC()}
	if rf != nil {
		if env.Rollout, err = rf.build(time.Now(), name); err != nil {
			return err
		}
	}
	env.SetTopics(topics) // the signature covers them: devices of other fleets refuse it
	layers, _, err := readLayersArg(*layersArg)
	if err != nil {
		return err
	}
	env.SetLayers(layers) // format 4 with layers
	if _, err := fleet.ParseTargetEnvelope(mustJSON(env)); err != nil {
		return usageError{err}
	}
	if dry.wanted() {
		return dryRun(ctx, &ff, scope, env, priv, dry, stdout, stderr)
	}
	if priv != nil {
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
	if rf != nil {
		what := fmt.Sprintf("target %s version %d", scope, v)
		if err := startControl(ctx, op, topics, env.Rollout, what, scope, priv); err != nil {
			return err
		}
		fmt.Fprintln(stdout, describeRollout(env.Rollout))
	}
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
	if rf != nil {
		fmt.Fprintf(stdout, "follow it with tern rollout watch --fleet %s %s; pause, resume or abort it with tern rollout pause|resume|abort %s\n", ff.fleet, env.Rollout.ID, env.Rollout.ID)
		return nil
	}
	// A device reports the sum of its sources' versions, not v: say how
	// to follow the push without adding them up by hand.
	if *group != "" {
		fmt.Fprintf(stdout, "each device of group %s reports version %d plus the versions of its other targets; tern watch --fleet %s --group %s --pushed %d --until-converged adds them up and follows the rollout\n",
			*group, v, ff.fleet, *group, v)
	} else {
		fmt.Fprintf(stdout, "%s reports version %d plus the versions of its groups' targets; tern watch --fleet %s --device %s --pushed %d --until-converged adds them up and follows it\n",
			*device, v, ff.fleet, *device, v)
	}
	if *replaces != 0 {
		fmt.Fprintf(stdout, "it replaces version %d on devices that hold exactly that version; they refuse versions from %d up from now on\n", *replaces, *replaces)
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
