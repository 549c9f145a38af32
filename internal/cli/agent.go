package cli

import (
	"context"
	"crypto/ed25519"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
)

// mainPackage is the package a ternd binary is built from.
const mainPackage = "github.com/tern-iot/tern/cmd/ternd"

// runVersion is the version ternd at path prints, or "" if it does not run
// here (another architecture, without qemu-user's binfmt handlers).
// -trimpath keeps -ldflags, where -X sets the version, out of the build
// information, so the binary has to say it.
func runVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[0] != "ternd" {
		return ""
	}
	return f[1]
}

func agentRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return agentReleaseWith(ctx, "agent release", args, stdout, stderr, nil)
}

// agentReleaseWith is agent release, or, with rf, tern rollout start
// --agent: the release with a rollout policy, after the rollout's
// control.
func agentReleaseWith(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, rf *rolloutFlags) error {
	fs := newFlags(cmd, stderr)
	if rf != nil {
		rf.register(fs)
		fs.Bool("agent", true, "the file is a ternd binary: roll out an agent release")
	}
	var ff fleetFlags
	ff.register(fs)
	keyPath := fs.String("key", envOr("TERN_KEY", ""), "private key to sign the release with (or $TERN_KEY); required")
	ver := versionVar(fs, "the release's version, which must grow with every agent release; default: the current time in milliseconds")
	arch := fs.String("arch", "", "architecture: amd64, arm64, armv7 or armv6; default: read from the binary")
	agentVer := fs.String("agent-version", "", "ternd's own version, checked by devices against what the binary says; default: what TERND version prints, if it runs here")
	dryRun := fs.Bool("dry-run", false, "print the release (JSON) instead of publishing it, e.g. for mosquitto_pub -f")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("%s needs --key and one ternd binary", cmd)}
	}
	if err := ver.check(); err != nil {
		return err
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
	if err := checkFileArg("ternd binary", path, "give a ternd from make dist, e.g. dist/ternd-linux-arm64"); err != nil {
		return err
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s is not a Go binary (%v): release a ternd from make dist", path, err)
	}
	if bi.Path != mainPackage {
		return fmt.Errorf("%s is %s, not ternd (%s)", path, bi.Path, mainPackage)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "linux" || settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("%s is built for %s with CGO_ENABLED=%s; devices run static linux builds (make dist)", path, settings["GOOS"], settings["CGO_ENABLED"])
	}
	built := settings["GOARCH"]
	if built == "arm" {
		built += "v" + settings["GOARM"]
	}
	if *arch == "" {
		*arch = built
	} else if *arch != built {
		return fmt.Errorf("%s is built for %s, not --arch %s", path, built, *arch)
	}
	if err := fleet.ValidArch(*arch); err != nil {
		return err
	}
	agentVersion := *agentVer
	if agentVersion == "" {
		agentVersion = runVersion(ctx, path)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(bin) > fleet.MaxAgentSize {
		return fmt.Errorf("%s is %d bytes; agent releases carry binaries up to %d MiB", path, len(bin), fleet.MaxAgentSize>>20)
	}
	v := ver.v
	if !ver.set {
		v = uint64(time.Now().UnixMilli())
	}
	topics := fleet.Topics{Prefix: ff.prefix, Fleet: ff.fleet}
	if err := topics.Validate(); err != nil {
		return usageError{err}
	}
	r, err := fleet.NewAgentRelease(*arch, v, bin)
	if err != nil {
		return err
	}
	r.SetTopics(topics) // the signature covers them: devices of other fleets refuse it
	if len(r.Gzip) > fleet.MaxAgentCompressed {
		return fmt.Errorf("%s compresses to %d bytes, over the %d MiB limit of agent releases", path, len(r.Gzip), fleet.MaxAgentCompressed>>20)
	}
	r.AgentVersion = agentVersion
	if rf != nil {
		if r.Rollout, err = rf.build(time.Now(), "ternd-"+*arch); err != nil {
			return err
		}
	}
	r.Sign(priv)
	if *dryRun {
		fmt.Fprintln(stdout, string(mustJSON(r)))
		return nil
	}
	op, err := ff.dial(ctx)
	if err != nil {
		return err
	}
	defer op.Close()
	if r.Rollout != nil {
		what := fmt.Sprintf("ternd %s for %s (release %d)", orDash(agentVersion), *arch, v)
		if err := startControl(ctx, op, topics, r.Rollout, what, fleet.AgentScope(*arch), priv); err != nil {
			return err
		}
		fmt.Fprintln(stdout, describeRollout(r.Rollout))
	}
	if err := op.PushAgentRelease(ctx, r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "released ternd %s for %s as version %d on %s (%d bytes, %d compressed, sha256 %.12s, signed by %s)\n",
		orDash(agentVersion), *arch, v, topics.Agent(*arch), len(bin), len(r.Gzip), r.SHA256,
		signing.KeyID(priv.Public().(ed25519.PublicKey)))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
