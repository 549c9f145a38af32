package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/daemon"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/sdk"
)

// retainedWait is how long release waits for the retained release, to
// pick the next version, once the broker acknowledged the subscription.
const retainedWait = 2 * time.Second

// release publishes a module release: tern release [fleet flags] --module
// NAME --key K.key [--version N] [--config ternd.yaml] [--dry-run] M.wasm.
//
// The module a release replaces is named by --module, never by the file:
// a release replaces that module on every device that runs it, and runs
// with the grants each device gives that module, so a file that calls
// itself relay must not become relay by accident. The file's own name
// must agree.
func release(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", "[fleet flags] --module NAME --key KEY.key [--version N] [--config ternd.yaml] [--dry-run] M.wasm", stderr)
	var ff fleetFlags
	ff.register(fs)
	module := fs.String("module", "", "the module the release replaces (required): it is published on <prefix>/<fleet>/modules/NAME and runs with the grants NAME has in each device's ternd.yaml; the file's manifest must name the same module")
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the release (and the module, if unsigned) with (or $TERN_KEY); required")
	ver := fs.Uint64("version", 0, fmt.Sprintf("release version, at most %d; default: one more than the release retained on the broker, or the current time in milliseconds if none", fleet.MaxVersion))
	config := fs.String("config", "", "a device's ternd.yaml: print the grants the release runs with on devices configured like it, and check it is in the fleet")
	dryRun := fs.Bool("dry-run", false, "print the release envelope (JSON) instead of publishing it, e.g. for mosquitto_pub -f")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("release needs --module NAME, --key and one module (.wasm)")}
	}
	if err := checkVersionFlag(*ver); err != nil {
		return err
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	priv, err := signing.ReadPrivate(*keyPath)
	if err != nil {
		return usageError{fmt.Errorf("--key: %w", err)}
	}
	path := fs.Arg(0)
	wasm, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(wasm) > fleet.MaxModuleSize {
		return fmt.Errorf("%s is %d bytes; releases carry modules up to %d bytes (%d MiB): make it smaller (build with -ldflags=-s, drop unused packages)",
			path, len(wasm), fleet.MaxModuleSize, fleet.MaxModuleSize>>20)
	}
	man, embedded, err := modfile.Manifest(wasm)
	if err != nil || !embedded {
		embedded = false
		if man, err = tern.Describe(ctx, wasm); err != nil {
			return fmt.Errorf("%s is not a module devices can load: %w", path, err)
		}
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
	signedCode := ""
	if modfile.Signer(wasm) == "" {
		if !embedded {
			// Devices read the name from the section before they run
			// anything of the code.
			if wasm, err = modfile.WithManifest(wasm, man); err != nil {
				return err
			}
		}
		if wasm, err = modfile.Sign(wasm, priv); err != nil {
			return err
		}
		signedCode = " (module signed too)"
	}

	v := *ver
	var op *fleet.Operator
	if !*dryRun {
		if op, err = ff.dial(ctx); err != nil {
			return err
		}
		defer op.Close()
		if v == 0 {
			if held, ok, err := op.RetainedRelease(ctx, *module, retainedWait); err == nil && ok {
				if held.Version >= fleet.MaxVersion {
					return fmt.Errorf("the release retained on %s has version %d, the largest there is: devices that took it refuse every other release of %s; pass --version only if they did not", topics.Module(*module), held.Version, *module)
				}
				v = held.Version + 1
			}
		}
	}
	if v == 0 {
		v = uint64(time.Now().UnixMilli())
	}
	env := fleet.NewRelease(*module, v, wasm)
	env.SetTopics(topics) // the signature covers them: devices of other fleets refuse it
	env.ModuleVersion = man.Version
	env.Sign(priv)
	if *dryRun {
		fmt.Fprintln(stdout, string(mustJSON(env)))
		return nil
	}
	if err := op.PushRelease(ctx, env); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "released %s %s as version %d on %s (%d bytes, sha256 %.12s, signed by %s)%s\n",
		*module, man.Version, v, topics.Module(*module), len(wasm), env.SHA256,
		signing.KeyID(priv.Public().(ed25519.PublicKey)), signedCode)
	return nil
}

// printGrants tells the operator, before anything is published, which
// hardware the release will be able to use: a release changes a module's
// code, and the code runs with the grants each device's ternd.yaml gives
// the module's name. With config (a device's ternd.yaml) it prints that
// device's grants and checks the device is in the fleet released to.
func printGrants(w io.Writer, config string, topics fleet.Topics, man sdk.Manifest) error {
	asks := "asks for no hardware"
	if len(man.Resources) > 0 {
		asks = "asks for " + strings.Join(man.Resources, ", ")
	}
	if config == "" {
		fmt.Fprintf(w, "grants: each device runs %s with the grants under modules[].grants for %s in its own ternd.yaml (the release changes the code, not the grants; --config ternd.yaml shows a device's); the code %s\n",
			man.Name, man.Name, asks)
		return nil
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
