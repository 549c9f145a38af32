package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	tern "github.com/tern-iot/tern/runtime"
)

// retainedWait is how long release waits for the retained release, to
// pick the next version, once the broker acknowledged the subscription.
const retainedWait = 2 * time.Second

// release publishes a module release: tern release [fleet flags] --key K.key
// [--version N] [--dry-run] M.wasm.
func release(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("release", "[fleet flags] --key KEY.key [--version N] [--dry-run] M.wasm", stderr)
	var ff fleetFlags
	ff.register(fs)
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the release (and the module, if unsigned) with (or $TERN_KEY); required")
	ver := fs.Uint64("version", 0, "release version; default: one more than the release retained on the broker, or the current time in milliseconds if none")
	dryRun := fs.Bool("dry-run", false, "print the release envelope (JSON) instead of publishing it, e.g. for mosquitto_pub -f")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("release needs --key and one module (.wasm)")}
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
	man, ok, err := modfile.Manifest(wasm)
	if err != nil || !ok {
		if man, err = tern.Describe(ctx, wasm); err != nil {
			return fmt.Errorf("%s is not a module devices can load: %w", path, err)
		}
	}
	if err := fleet.ValidID(man.Name); err != nil {
		return fmt.Errorf("%s: module name: %w", path, err)
	}
	signedCode := ""
	if modfile.Signer(wasm) == "" {
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
			if held, ok, err := op.RetainedRelease(ctx, man.Name, retainedWait); err == nil && ok {
				v = held.Version + 1
			}
		}
	}
	if v == 0 {
		v = uint64(time.Now().UnixMilli())
	}
	env := fleet.NewRelease(man.Name, v, wasm)
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
		man.Name, man.Version, v, fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}.Module(man.Name), len(wasm), env.SHA256,
		signing.KeyID(priv.Public().(ed25519.PublicKey)), signedCode)
	return nil
}
