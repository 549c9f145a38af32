package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/wasmbuild"
	tern "github.com/tern-iot/tern/runtime"
)

const moduleUsage = `usage:
  tern module build DIR [-o OUT.wasm]              build a module from Go, with its manifest section
  tern module sign --key KEY.key M.wasm [-o OUT]   sign a module (in place unless -o)
  tern module inspect M.wasm [--trust KEY.pub]...  print its manifest, hash and signer`

func module(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(moduleUsage)}
	}
	if isHelp(args[0]) {
		fmt.Fprint(stderr, groupHelp["module"])
		return flag.ErrHelp
	}
	switch args[0] {
	case "build":
		return moduleBuild(ctx, args[1:], stdout, stderr)
	case "sign":
		return moduleSign(args[1:], stdout, stderr)
	case "inspect":
		return moduleInspect(args[1:], stdout, stderr)
	}
	return usageError{fmt.Errorf("unknown module command %q\n%s", args[0], moduleUsage)}
}

func moduleBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("module build", "DIR [-o OUT.wasm]", stderr)
	out := fs.String("o", "", "output file (default DIR/<dir name>.wasm)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("module build needs one directory")}
	}
	dir := fs.Arg(0)
	if *out == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		*out = filepath.Join(dir, filepath.Base(abs)+".wasm")
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if err := wasmbuild.Build(dir, abs); err != nil {
		return err
	}
	wasm, err := os.ReadFile(abs)
	if err != nil {
		return err
	}
	man, err := tern.Describe(ctx, wasm)
	if err != nil {
		return fmt.Errorf("the module built but does not load: %w", err)
	}
	if wasm, err = modfile.WithManifest(wasm, man); err != nil {
		return err
	}
	if err := os.WriteFile(abs, wasm, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "built %s: %s %s, %d jobs, %d sensors (%d bytes)\n", *out, man.Name, man.Version, len(man.Jobs), len(man.Sensors), len(wasm))
	return nil
}

func moduleSign(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("module sign", "--key KEY.key M.wasm [-o OUT.wasm]", stderr)
	keyPath := fs.String("key", "", "private key file from 'tern keys generate' (required)")
	out := fs.String("o", "", "output file (default: sign in place)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("module sign needs --key and one module")}
	}
	priv, err := signing.ReadPrivate(*keyPath)
	if err != nil {
		return usageError{err}
	}
	in := fs.Arg(0)
	wasm, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	if _, ok, err := modfile.Manifest(wasm); err != nil || !ok {
		return usageError{fmt.Errorf("%s has no manifest section: build it with 'tern module build' first (%v)", in, err)}
	}
	signed, err := modfile.Sign(wasm, priv)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = in
	}
	if err := os.WriteFile(*out, signed, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signed %s with key %s\n", *out, signing.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}

func moduleInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("module inspect", "M.wasm [--trust KEY.pub]... [--json]", stderr)
	var trustFiles repeated
	fs.Var(&trustFiles, "trust", "a public key file to verify the signature against; repeat for several")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("module inspect needs one module")}
	}
	wasm, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	man, ok, err := modfile.Manifest(wasm)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s has no manifest section: build it with 'tern module build'", fs.Arg(0))
	}
	sum := sha256.Sum256(wasm)
	report := struct {
		Manifest any    `json:"manifest"`
		Bytes    int    `json:"bytes"`
		SHA256   string `json:"sha256"`
		Signer   string `json:"signer,omitempty"`
		Verified *bool  `json:"verified,omitempty"`
		Problem  string `json:"problem,omitempty"`
	}{Manifest: man, Bytes: len(wasm), SHA256: hex.EncodeToString(sum[:]), Signer: modfile.Signer(wasm)}
	if len(trustFiles) > 0 {
		var keys []ed25519.PublicKey
		for _, f := range trustFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			k, err := signing.ParsePublic(string(b))
			if err != nil {
				return usageError{fmt.Errorf("--trust %s: %w", f, err)}
			}
			keys = append(keys, k)
		}
		_, _, verr := modfile.Verify(wasm, signing.NewTrust(keys...))
		ok := verr == nil
		report.Verified = &ok
		if verr != nil {
			report.Problem = verr.Error()
		}
	}
	if *asJSON {
		b, _ := json.MarshalIndent(report, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "module   %s %s (ABI %d)\n", man.Name, man.Version, man.ABI)
		fmt.Fprintf(stdout, "size     %d bytes, sha256 %s\n", report.Bytes, report.SHA256)
		signer := report.Signer
		if signer == "" {
			signer = "unsigned"
		}
		fmt.Fprintf(stdout, "signer   %s\n", signer)
		if report.Verified != nil {
			if *report.Verified {
				fmt.Fprintln(stdout, "verified yes")
			} else {
				fmt.Fprintf(stdout, "verified NO: %s\n", report.Problem)
			}
		}
		for _, j := range man.Jobs {
			kind := string(j.Kind)
			if kind == "" {
				kind = "action"
			}
			fmt.Fprintf(stdout, "job      %-20s %-7s %-6s %s\n", j.Name, kind, j.Op, j.Path)
		}
		for _, s := range man.Sensors {
			fmt.Fprintf(stdout, "sensor   %-20s every %dms %s\n", s.Name, s.IntervalMS, s.Path)
		}
		if len(man.Resources) > 0 {
			fmt.Fprintf(stdout, "requests %s\n", strings.Join(man.Resources, ", "))
		}
	}
	if report.Verified != nil && !*report.Verified {
		return errors.New("signature not verified")
	}
	return nil
}

func keys(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: tern keys generate NAME [--dir DIR] | tern keys list [--dir DIR]"
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	if isHelp(args[0]) {
		fmt.Fprint(stderr, groupHelp["keys"])
		return flag.ErrHelp
	}
	synopsis := "[--dir DIR]"
	if args[0] == "generate" {
		synopsis = "NAME [--dir DIR]"
	}
	fs := newFlags("keys "+args[0], synopsis, stderr)
	dir := fs.String("dir", envOr("TERN_KEYS", "."), "where key files are (or $TERN_KEYS)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "generate":
		if fs.NArg() != 1 {
			return usageError{errors.New("keys generate needs a NAME")}
		}
		pub, err := signing.Generate(*dir, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s: private %s (keep it secret), public %s\ntrust it on devices with, in ternd.yaml:\n  trusted_keys:\n    - %s\n",
			signing.KeyID(pub), filepath.Join(*dir, fs.Arg(0)+".key"), filepath.Join(*dir, fs.Arg(0)+".pub"), signing.FormatPublic(pub))
		return nil
	case "list":
		names, _ := filepath.Glob(filepath.Join(*dir, "*.pub"))
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return err
			}
			pub, err := signing.ParsePublic(string(b))
			if err != nil {
				fmt.Fprintf(stdout, "%-20s (not a tern public key: %v)\n", filepath.Base(n), err)
				continue
			}
			_, perr := os.Stat(strings.TrimSuffix(n, ".pub") + ".key")
			fmt.Fprintf(stdout, "%-20s %s private key here: %v\n", strings.TrimSuffix(filepath.Base(n), ".pub"), signing.KeyID(pub), perr == nil)
		}
		return nil
	}
	return usageError{errors.New(usage)}
}
