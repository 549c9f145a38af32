package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tern-iot/tern/internal/modfile"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/wasmbuild"
	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/sdk/abi"
)

func moduleBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := newFlags("module build", stderr)
	out := flags.String("o", "", "output file (default DIR/<dir name>.wasm)")
	if err := parse(flags, args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return usageError{errors.New("module build needs one directory")}
	}
	dir := flags.Arg(0)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return usageError{fmt.Errorf("%s is a file; module build takes the directory of the module's Go package (its main package), e.g. ./plugins/relay", dir)}
	} else if errors.Is(err, fs.ErrNotExist) && (strings.HasPrefix(dir, ".") || filepath.IsAbs(dir)) {
		// (Anything else may be an import path: go build takes those.)
		return usageError{fmt.Errorf("%s: no such directory; module build takes the directory of the module's Go package (its main package), e.g. ./plugins/relay", dir)}
	}
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
	commands := 0
	for _, j := range man.Jobs {
		if j.IsCommand() {
			commands++
		}
	}
	fmt.Fprintf(stdout, "built %s: %s %s, %d jobs, %d commands, %d sensors (%d bytes)\n", *out, man.Name, man.Version, len(man.Jobs)-commands, commands, len(man.Sensors), len(wasm))
	return nil
}

func moduleSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("module sign", stderr)
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key file from 'tern keys generate' (or $TERN_KEY; required)")
	out := fs.String("o", "", "output file (default: sign in place)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{errors.New("module sign needs --key and one module")}
	}
	priv, err := readKey(*keyPath)
	if err != nil {
		return err
	}
	in := fs.Arg(0)
	wasm, err := readFileArg("module", in, hintModule)
	if err != nil {
		return err
	}
	wasm, man, added, err := withManifest(ctx, in, wasm)
	if err != nil {
		return err
	}
	signed, err := modfile.Sign(wasm, priv)
	if err != nil {
		return fmt.Errorf("signing %s: %w", in, err)
	}
	if *out == "" {
		*out = in
	}
	if err := os.WriteFile(*out, signed, 0o644); err != nil {
		return err
	}
	note := ""
	if added {
		note = " (its manifest section added first, from what the module describes)"
	}
	fmt.Fprintf(stdout, "signed %s (%s %s) with key %s%s\n", *out, man.Name, man.Version, signing.KeyID(priv.Public().(ed25519.PublicKey)), note)
	return nil
}

// withManifest returns the module with its manifest section, and the
// manifest. A module without one (built by go build or make plugins rather
// than tern module build) gets it the way tern module build adds it: the
// module is loaded in a throwaway sandbox, without hardware, and describes
// itself. added says whether it did. Devices read the section before they
// run any of the code, and a signature covers it, so it must be there
// before the module is signed.
func withManifest(ctx context.Context, path string, wasm []byte) (out []byte, man abi.Manifest, added bool, err error) {
	man, ok, err := modfile.Manifest(wasm)
	switch {
	case err != nil && ok:
		return nil, man, false, usageError{fmt.Errorf("%s: %w; build it again with tern module build (or make plugins, then tern module sign adds the section)", path, err)}
	case err != nil:
		return nil, man, false, usageError{fmt.Errorf("%s is not a module: %w", path, err)}
	case ok:
		return wasm, man, false, nil
	}
	if modfile.Signer(wasm) != "" {
		return nil, man, false, usageError{fmt.Errorf("%s is signed but has no manifest section, which devices read before running it and which must come before the signature; build it again (tern module build, or make plugins) and sign that", path)}
	}
	if man, err = tern.Describe(ctx, wasm); err != nil {
		return nil, man, false, fmt.Errorf("%s has no manifest section, and loading it to read its manifest failed: %w", path, err)
	}
	if out, err = modfile.WithManifest(wasm, man); err != nil {
		return nil, man, false, err
	}
	return out, man, true, nil
}

func moduleInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("module inspect", stderr)
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
	var keys []ed25519.PublicKey
	for _, f := range trustFiles {
		b, err := readFileArg("--trust", f, "give a public key file (NAME.pub, from tern keys generate NAME)")
		if err != nil {
			return err
		}
		k, err := signing.ParsePublic(string(b))
		if err != nil {
			return usageError{fmt.Errorf("--trust %s: %w", f, err)}
		}
		keys = append(keys, k)
	}
	path := fs.Arg(0)
	wasm, err := readFileArg("module", path, hintModule)
	if err != nil {
		return err
	}
	man, embedded, err := modfile.Manifest(wasm)
	if err != nil {
		return err
	}
	if !embedded {
		// A plain go build (make plugins): ask the module, as devices do.
		if man, err = tern.Describe(ctx, wasm); err != nil {
			return fmt.Errorf("%s has no manifest section, and loading it to read its manifest failed: %w", path, err)
		}
	}
	sum := sha256.Sum256(wasm)
	report := struct {
		Manifest any    `json:"manifest"`
		Embedded bool   `json:"embedded"` // the manifest is in the module's section, not only described by its code
		Bytes    int    `json:"bytes"`
		SHA256   string `json:"sha256"`
		Signer   string `json:"signer,omitempty"`
		Verified *bool  `json:"verified,omitempty"`
		Problem  string `json:"problem,omitempty"`
	}{Manifest: man, Embedded: embedded, Bytes: len(wasm), SHA256: hex.EncodeToString(sum[:]), Signer: modfile.Signer(wasm)}
	if len(keys) > 0 {
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
		section := ""
		if !embedded {
			section = ", no manifest section (tern module sign adds it)"
		}
		fmt.Fprintf(stdout, "module   %s %s (ABI %d)%s\n", man.Name, man.Version, man.ABI, section)
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
			if j.IsCommand() {
				fmt.Fprintf(stdout, "command  %-20s run by fleet jobs (tern job submit --module %s --command %s)\n", j.Name, man.Name, j.Name)
				continue
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

func keysGenerate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys generate", stderr)
	dir := fs.String("dir", envOr("TERN_KEYS", "."), "where key files are (or $TERN_KEYS)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("keys generate needs a NAME, e.g. tern keys generate ops")}
	}
	pub, err := signing.Generate(*dir, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: private %s (keep it secret), public %s\ntrust it on devices with, in ternd.yaml:\n  trusted_keys:\n    - %s\n",
		signing.KeyID(pub), filepath.Join(*dir, fs.Arg(0)+".key"), filepath.Join(*dir, fs.Arg(0)+".pub"), signing.FormatPublic(pub))
	return nil
}

func keysList(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys list", stderr)
	dir := fs.String("dir", envOr("TERN_KEYS", "."), "where key files are (or $TERN_KEYS)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("keys list takes no arguments, got %q; name the directory with --dir DIR", fs.Arg(0))}
	}
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
