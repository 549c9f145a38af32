package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/sdk/abi"
)

// retainedWait is how long release waits for the retained release, to
// pick the next version (or check --version against it), once the broker
// acknowledged the subscription.
const retainedWait = 2 * time.Second

// release publishes a module release: tern release [fleet flags] --module
// NAME --key K.key [--version N [--force]] [--config ternd.yaml]
// [--dry-run] M.wasm.
//
// The module a release replaces is named by --module, never by the file:
// a release replaces that module on every device that runs it, and runs
// with the grants each device gives that module, so a file that calls
// itself relay must not become relay by accident. The file's own name
// must agree.
func release(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return releaseWith(ctx, "release", args, stdout, stderr, nil)
}

// releaseWith is release, or, with rf, tern rollout start of a module
// release: the release with a rollout policy, after the rollout's control.
func releaseWith(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, rf *rolloutFlags) error {
	fs := newFlags(cmd, stderr)
	if rf != nil {
		rf.register(fs)
	}
	var ff fleetFlags
	ff.register(fs)
	module := fs.String("module", "", "the module the release replaces (required): it is published on <prefix>/<fleet>/modules/NAME and runs with the grants NAME has in each device's ternd.yaml; the file's manifest must name the same module")
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the release (and the module, if unsigned) with (or $TERN_KEY); required")
	ver := versionVar(fs, "the release's version, which must grow with every release of the module; default: the larger of one more than the release retained on the broker and the current time in milliseconds (with --dry-run: the time)")
	force := fs.Bool("force", false, "publish a --version that is not above the retained release's (devices that took the retained one refuse it: only for a retained release no device installed)")
	config := fs.String("config", "", "a device's ternd.yaml: print the grants the release runs with on devices configured like it, and check it is in the fleet")
	dryRun := fs.Bool("dry-run", false, "print the release envelope (JSON) instead of publishing it, e.g. for mosquitto_pub -f; the broker is not asked for the retained release")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("%s needs --module NAME, --key and one module (.wasm)", cmd)}
	}
	if err := ver.check(); err != nil {
		return err
	}
	if *force && !ver.set {
		return usageError{errors.New("--force goes with --version N: it publishes a version that is not above the retained release's; without --version the version is always above it")}
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	if !*dryRun {
		if err := ff.check(); err != nil {
			return err
		}
	}
	priv, err := readKey(*keyPath)
	if err != nil {
		return err
	}
	path := fs.Arg(0)
	wasm, err := readFileArg("module", path, hintModule)
	if err != nil {
		return err
	}
	if len(wasm) > fleet.MaxModuleSize {
		return fmt.Errorf("%s is %d bytes; releases carry modules up to %d bytes (%d MiB): make it smaller (build with -ldflags=-s, drop unused packages)",
			path, len(wasm), fleet.MaxModuleSize, fleet.MaxModuleSize>>20)
	}
	var man abi.Manifest
	signedCode := ""
	if modfile.Signer(wasm) == "" {
		// Devices read the name from the manifest section before they run
		// anything of the code, and the signature covers it: add it first.
		var added bool
		if wasm, man, added, err = withManifest(ctx, path, wasm); err != nil {
			return err
		}
		if wasm, err = modfile.Sign(wasm, priv); err != nil {
			return err
		}
		signedCode = " (module signed too)"
		if added {
			signedCode = " (module signed too, its manifest section added first)"
		}
	} else if man, err = signedManifest(ctx, path, wasm); err != nil {
		return err
	}
	switch {
	case *module == "":
		return usageError{fmt.Errorf("release needs --module NAME, the module the release replaces on every device that runs it (and whose grants it runs with); %s calls itself %q: if that is the module to replace, add --module %s", path, man.Name, man.Name)}
	case fleet.ValidID(*module) != nil:
		return usageError{fmt.Errorf("--module: %w", fleet.ValidID(*module))}
	case man.Name != *module:
		return usageError{fmt.Errorf("%s calls itself %q (its manifest), not %q: released as %s it would replace %s on every device and run with %s's grants; release it with --module %s, or release the module you meant",
			path, man.Name, *module, *module, *module, *module, man.Name)}
	}
	if err := printGrants(stderr, *config, topics, man); err != nil {
		return err
	}
	var ro *fleet.Rollout
	if rf != nil {
		if ro, err = rf.build(time.Now(), *module); err != nil {
			return err
		}
	}

	if *dryRun {
		v := ver.v
		if !ver.set {
			v = uint64(time.Now().UnixMilli())
		}
		env := newRelease(topics, *module, v, wasm, man, priv, ro)
		fmt.Fprintln(stdout, string(mustJSON(env)))
		return nil
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	held, ok, err := op.RetainedRelease(ctx, *module, retainedWait)
	if err != nil {
		return err
	}
	var v uint64
	switch {
	case !ok && ver.set:
		v = ver.v
	case !ok:
		v = uint64(time.Now().UnixMilli())
	case !ver.set:
		if held.Version >= fleet.MaxVersion {
			return fmt.Errorf("the release retained on %s has version %d, the largest there is: devices that took it refuse every other release of %s; if none did, publish with --version N --force", topics.Module(*module), held.Version, *module)
		}
		// Above the retained release, and above every release tern made
		// by default before it, even when the retained one is older than
		// what devices hold (a lower --version published over it).
		v = max(held.Version+1, uint64(time.Now().UnixMilli()))
	default:
		v = ver.v
	}
	env := newRelease(topics, *module, v, wasm, man, priv, ro)
	if ok && ver.set && !*force {
		if err := checkAboveRetained(topics, held, env); err != nil {
			return err
		}
	}
	if ok && held.Version == v && held.SHA256 == env.SHA256 {
		fmt.Fprintf(stderr, "the release retained on %s is this one (version %d, sha256 %.12s): devices that have it ignore it again\n", topics.Module(*module), v, env.SHA256)
	}
	if ro != nil {
		what := fmt.Sprintf("module %s version %d (%s)", *module, v, man.Version)
		if err := startControl(ctx, op, topics, ro, what, fleet.ModuleScope(*module), priv); err != nil {
			return err
		}
		fmt.Fprintln(stdout, describeRollout(ro))
	}
	if err := op.PushRelease(ctx, env); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "released %s %s as version %d on %s (%d bytes, sha256 %.12s, signed by %s)%s; tern watch --fleet %s shows each device's module.installed or module.refused\n",
		*module, man.Version, v, topics.Module(*module), len(wasm), env.SHA256,
		signing.KeyID(priv.Public().(ed25519.PublicKey)), signedCode, ff.fleet)
	return nil
}

// newRelease makes the signed release envelope.
func newRelease(topics fleet.Topics, module string, v uint64, wasm []byte, man abi.Manifest, priv ed25519.PrivateKey, ro *fleet.Rollout) fleet.ReleaseEnvelope {
	env := fleet.NewRelease(module, v, wasm)
	env.SetTopics(topics) // the signature covers them: devices of other fleets refuse it
	env.ModuleVersion = man.Version
	env.Rollout = ro
	env.Sign(priv)
	return env
}

// signedManifest is the manifest of a module signed already: from its
// section, or, for one signed without a section, from the module itself.
func signedManifest(ctx context.Context, path string, wasm []byte) (abi.Manifest, error) {
	man, ok, err := modfile.Manifest(wasm)
	if err != nil {
		return man, usageError{fmt.Errorf("%s: %w; build it again with tern module build and sign that", path, err)}
	}
	if ok {
		return man, nil
	}
	if man, err = tern.Describe(ctx, wasm); err != nil {
		return man, fmt.Errorf("%s is not a module devices can load: %w", path, err)
	}
	return man, nil
}

// checkAboveRetained refuses a release with a --version devices that took
// the retained release refuse: below it, or the same version with other
// code. The same version with the same code is the retained release again,
// which devices ignore; it passes.
func checkAboveRetained(topics fleet.Topics, held, env fleet.ReleaseEnvelope) error {
	if env.Version > held.Version || env.Version == held.Version && env.SHA256 == held.SHA256 {
		return nil
	}
	retained := fmt.Sprintf("the release retained on %s is version %d (%s %s, sha256 %.12s, issued %s)",
		topics.Module(held.Module), held.Version, held.Module, orDash(held.ModuleVersion), held.SHA256, issued(held.Issued))
	why := fmt.Sprintf("--version %d is below it: devices that took version %d refuse %d", env.Version, held.Version, env.Version)
	if env.Version == held.Version {
		why = fmt.Sprintf("--version %d is its version, with other code (sha256 %.12s): devices that took it refuse the same version with other code", env.Version, env.SHA256)
	}
	next := fmt.Sprintf("Leave --version out (the default is above %d), or pass a --version above %d", held.Version, held.Version)
	if held.Version >= fleet.MaxVersion {
		next = "No version is above it"
	}
	return usageError{fmt.Errorf("%s; %s. %s; --force publishes version %d anyway, for when no device took version %d",
		retained, why, next, env.Version, held.Version)}
}

func issued(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// printGrants tells the operator, before anything is published, which
// hardware the release will be able to use: a release changes a module's
// code, and the code runs with the grants each device's ternd.yaml gives
// the module's name. With config (a device's ternd.yaml) it prints that
// device's grants and checks the device is in the fleet released to.
func printGrants(w io.Writer, config string, topics fleet.Topics, man abi.Manifest) error {
	asks := "asks for no hardware"
	if len(man.Resources) > 0 {
		asks = "asks for " + strings.Join(man.Resources, ", ")
	}
	if config == "" {
		fmt.Fprintf(w, "grants: each device runs %s with the grants under modules[].grants for %s in its own ternd.yaml (the release changes the code, not the grants; --config ternd.yaml shows a device's); the code %s\n",
			man.Name, man.Name, asks)
		return nil
	}
	if err := checkFileArg("--config", config, "give a device's ternd.yaml"); err != nil {
		return err
	}
	cfg, err := daemon.LoadConfig(config)
	if err != nil {
		return usageError{fmt.Errorf("--config: %w", err)}
	}
	devTopics := fleet.Topics{Prefix: cfg.TopicPrefix, Fleet: cfg.Fleet}
	if devTopics.Module(man.Name) != topics.Module(man.Name) {
		return usageError{fmt.Errorf("--config %s is a device of fleet %s (topic %s), but the release goes to %s: that device would never see it; pass --fleet %s (and --prefix) or another --config",
			config, cfg.Fleet, devTopics.Module(man.Name), topics.Module(man.Name), cfg.Fleet)}
	}
	for _, m := range cfg.Modules {
		if m.Name != man.Name {
			continue
		}
		fmt.Fprintf(w, "grants: on devices configured like %s (device %s), %s runs with gpio %s, i2c %s, serial %s; the code %s\n",
			config, cfg.Device, man.Name, list(m.Grants.GPIO), list(m.Grants.I2C), list(m.Grants.Serial), asks)
		return nil
	}
	fmt.Fprintf(w, "grants: %s does not run module %s, so devices configured like it ignore this release (add %s to its modules, with grants, to run it); the code %s\n",
		config, man.Name, man.Name, asks)
	return nil
}

// list prints names for people: [a b], or none.
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "[" + strings.Join(names, " ") + "]"
}
