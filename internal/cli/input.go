package cli

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/state"
)

// This file is where tern checks what the user typed before it acts on
// it: broker addresses, versions, and files named on the command line.
// Each mistake is a usage error (exit 2) that names the flag or argument
// and says what to write instead.

// fleetFlags are the flags every command that talks to the fleet takes.
type fleetFlags struct {
	broker, fleet, prefix string
	tls                   fleet.TLSFiles
	fs                    *flag.FlagSet
}

// register adds the fleet flags. The client key is --cert-key, not --key:
// --key is the signing key of push and module sign.
func (f *fleetFlags) register(fs *flag.FlagSet) {
	f.registerTopics(fs)
	fs.StringVar(&f.broker, "broker", envOr("TERN_BROKER", "tcp://127.0.0.1:1883"), "MQTT broker `URL`: tcp://host:port, or ssl://host:port for TLS (or $TERN_BROKER)")
	fs.StringVar(&f.tls.CA, "ca", envOr("TERN_CA", ""), `with an ssl:// broker: the CA file that signed the broker's certificate, or "system" (or $TERN_CA)`)
	fs.StringVar(&f.tls.Cert, "cert", envOr("TERN_CERT", ""), "client certificate file, PEM (or $TERN_CERT)")
	fs.StringVar(&f.tls.Key, "cert-key", envOr("TERN_CERT_KEY", ""), "the client certificate's private key file, PEM (or $TERN_CERT_KEY)")
	fs.StringVar(&f.tls.ServerName, "server-name", "", "name the broker's certificate must carry, when not the broker URL's host")
}

// registerTopics adds only --fleet and --prefix, for a command that signs
// for a fleet without connecting to it (tern sign).
func (f *fleetFlags) registerTopics(fs *flag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.fleet, "fleet", envOr("TERN_FLEET", "default"), "fleet name (or $TERN_FLEET)")
	fs.StringVar(&f.prefix, "prefix", "tern", "topic prefix")
}

// check refuses a broker address, fleet or TLS files that connecting would
// refuse, as a usage error that says what to write. Every command that
// connects calls it (dial does, first), before it does anything else.
func (f *fleetFlags) check() error {
	src := "--broker " + f.broker
	if !f.given("broker") && os.Getenv("TERN_BROKER") != "" {
		src = "$TERN_BROKER " + f.broker
	}
	switch {
	case strings.TrimSpace(f.broker) == "":
		return usageError{fmt.Errorf("%s is empty: write tcp://host:port, e.g. tcp://127.0.0.1:1883 (or ssl://host:port for TLS)", strings.TrimSpace(src))}
	case !strings.Contains(f.broker, "://"):
		if host, _, err := net.SplitHostPort(f.broker); err == nil {
			return usageError{fmt.Errorf("%s has no scheme: write tcp://%s (or ssl://%s for a broker that speaks TLS)", src, f.broker, net.JoinHostPort(host, fleet.DefaultTLSPort))}
		}
		return usageError{fmt.Errorf("%s has no scheme: write tcp://%s (or ssl://%s for a broker that speaks TLS; the ports default to 1883 and %s)", src, f.broker, f.broker, fleet.DefaultTLSPort)}
	}
	if err := f.tls.Check(f.broker); err != nil {
		return usageError{err}
	}
	if err := (fleet.Topics{Prefix: f.prefix, Fleet: f.fleet}).Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

// given reports whether the flag name was on the command line (rather
// than from the environment or its default).
func (f *fleetFlags) given(name string) bool {
	set := false
	if f.fs != nil {
		f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	}
	return set
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// versionFlag is --version of the commands that sign (push, sign,
// release, agent release): unset (the command's default), or a whole
// number from 1 to fleet.MaxVersion. check says which.
type versionFlag struct {
	v   uint64
	set bool
	raw string
}

// versionVar adds --version to fs; usage says what the default is.
func versionVar(fs *flag.FlagSet, usage string) *versionFlag {
	v := new(versionFlag)
	fs.Var(v, "version", fmt.Sprintf("%s (a whole number `N` from 1 to %d)", usage, uint64(fleet.MaxVersion)))
	return v
}

func (f *versionFlag) String() string {
	if f == nil {
		return ""
	}
	return f.raw
}

func (f *versionFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		v = math.MaxUint64 // above the ceiling; check says so
	case err != nil:
		return fmt.Errorf("not a whole number; versions are whole numbers from 1 to %d", uint64(fleet.MaxVersion))
	}
	f.v, f.set, f.raw = v, true, s
	return nil
}

// check refuses a version devices refuse: 0, or above fleet.MaxVersion.
func (f *versionFlag) check() error {
	switch {
	case !f.set:
		return nil
	case f.v == 0:
		return usageError{errors.New("--version 0: versions start at 1 (devices refuse 0); leave --version out for the default, or give 1 or more")}
	case f.v > fleet.MaxVersion:
		return usageError{fmt.Errorf("--version %s is above the largest version, %d (2^53-1, the largest whole number every JSON reader carries exactly): devices refuse it; use a smaller one (the default, the time in milliseconds, is far below)", f.raw, uint64(fleet.MaxVersion))}
	}
	return nil
}

// The hints file errors add, by what the file is.
const (
	hintKey    = "make a key pair with tern keys generate NAME"
	hintModule = "give a module's .wasm file: make plugins writes plugins/NAME/NAME.wasm, tern module build DIR makes one"
	hintDoc    = `give a file, - for stdin, or inline JSON such as '{"relays":{"heater":true}}'`
)

// readFileArg reads a file named on the command line; what names the flag
// or argument ("--module", "module"), hint what to give instead. A file
// that is not there, is a directory or may not be read is a usage error
// that says which; other errors (the disk failing) are not.
func readFileArg(what, path, hint string) ([]byte, error) {
	if err := checkFileArg(what, path, hint); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fileArgError(what, path, hint, err)
	}
	return b, nil
}

// checkFileArg is readFileArg's check alone, for files a library reads.
func checkFileArg(what, path, hint string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fileArgError(what, path, hint, err)
	}
	if fi.IsDir() {
		return usageError{fmt.Errorf("%s is a directory, not a file; %s", named(what, path), hint)}
	}
	return nil
}

func fileArgError(what, path, hint string, err error) error {
	where := ""
	if !filepath.IsAbs(path) {
		if abs, aerr := filepath.Abs(path); aerr == nil {
			where = " (" + abs + ")"
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usageError{fmt.Errorf("%s: no such file%s; %s", named(what, path), where, hint)}
	case errors.Is(err, fs.ErrPermission):
		return usageError{fmt.Errorf("%s: this user may not read it (permission denied)%s; check its owner and mode", named(what, path), where)}
	}
	return fmt.Errorf("%s: %w", named(what, path), err)
}

func named(what, path string) string {
	if what == "" {
		return path
	}
	return what + " " + path
}

// readKey reads the operator's private key named by --key.
func readKey(path string) (ed25519.PrivateKey, error) {
	if err := checkFileArg("--key", path, hintKey); err != nil {
		return nil, err
	}
	priv, err := signing.ReadPrivate(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--key: %w", err)}
	}
	return priv, nil
}

// maxInline bounds a document read from stdin: a target is at most
// fleet.MaxPayload, and a state is of the same order.
const maxInline = 1 << 20

// readDocArg reads a JSON object named on the command line: a file, "-"
// for stdin, or inline JSON. It refuses what devices refuse of a target:
// not an object, invalid UTF-8, nested deeper than state.MaxDepth.
func readDocArg(what, arg string) (json.RawMessage, any, error) {
	var b []byte
	var err error
	switch trimmed := strings.TrimSpace(arg); {
	case arg == "-":
		b, err = io.ReadAll(io.LimitReader(os.Stdin, maxInline))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: reading stdin: %w", what, err)
		}
	case strings.HasPrefix(trimmed, "{"), strings.HasPrefix(trimmed, "["):
		b = []byte(arg)
	default:
		if b, err = readFileArg(what, arg, hintDoc); err != nil {
			return nil, nil, err
		}
	}
	v, err := state.Parse(b)
	if errors.Is(err, state.ErrTooDeep) {
		return nil, nil, usageError{fmt.Errorf("%s nests objects and arrays more than %d levels deep (%v), which devices refuse: flatten it", what, state.MaxDepth, err)}
	}
	if _, ok := v.(map[string]any); err != nil || !ok {
		why := "not an object"
		if err != nil {
			why = err.Error()
		}
		return nil, nil, usageError{fmt.Errorf(`%s must be a JSON object, e.g. '{"relays":{"heater":true}}': %s`, what, why)}
	}
	return json.RawMessage(b), v, nil
}
