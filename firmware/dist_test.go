package firmware_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sizeBudget reads size-budget.txt: architecture → bytes.
func sizeBudget(t *testing.T) map[string]int64 {
	t.Helper()
	f, err := os.Open("size-budget.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	budget := map[string]int64{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		n, err := strconv.ParseInt(fields[1], 10, 64)
		if len(fields) != 2 || err != nil {
			t.Fatalf("size-budget.txt: %q: want ARCH BYTES", s.Text())
		}
		budget[fields[0]] = n
	}
	return budget
}

var distArches = []struct{ name, goarch, goarm string }{
	{"amd64", "amd64", ""}, {"arm64", "arm64", ""}, {"armv7", "arm", "7"}, {"armv6", "arm", "6"},
}

// Every architecture ternd ships for stays within its size budget (the
// same check as make size-check, on the same build flags).
func TestSizeBudget(t *testing.T) {
	budget := sizeBudget(t)
	for _, a := range distArches {
		b, ok := budget[a.name]
		if !ok {
			t.Errorf("size-budget.txt has no budget for %s", a.name)
			continue
		}
		fi, err := os.Stat(ternd(t, a.goarch, a.goarm, "v1-test"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ternd %s: %d bytes (budget %d, %.0f%%)", a.name, fi.Size(), b, 100*float64(fi.Size())/float64(b))
		if fi.Size() > b {
			t.Errorf("ternd for %s is %d bytes, over its budget of %d (firmware/size-budget.txt): find what grew (go tool nm -size -sort size), or raise the budget in its own commit saying why",
				a.name, fi.Size(), b)
		}
	}
}

// The import graph keeps its promises (issue 15): ternd links no MQTT
// broker, on a 64-bit or a 32-bit build (the development broker is for
// `tern broker` and tests; fleet/devbroker's doc says what it cost the
// agent); the fleet contract links no agent (wazero, Badger, bbolt),
// so that tools speaking it need not carry one; and the host (ternd, the
// runtime) links the module ABI's codec, sdk/abi, a leaf, never the guest
// SDK.
func TestImportBoundaries(t *testing.T) {
	deps := func(goarch, pkg string) []string {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		return strings.Fields(string(out))
	}
	for _, goarch := range []string{"amd64", "arm"} {
		for _, dep := range deps(goarch, "github.com/tern-iot/tern/cmd/ternd") {
			// nats-io: the development broker (nats-server) and the client
			// it is read through (nats.go); mochi-mqtt: the one before.
			if strings.HasPrefix(dep, "github.com/nats-io/") || strings.HasPrefix(dep, "github.com/mochi-mqtt/") || dep == "github.com/tern-iot/tern/fleet/devbroker" {
				t.Errorf("ternd (GOARCH=%s) imports %s: a package ternd links imports the development broker", goarch, dep)
			}
		}
	}
	// The host's side of the module ABI: each line is a package of the
	// build and what it imports, so that a failure names the importer.
	const sdk = "github.com/tern-iot/tern/sdk"
	for _, host := range []string{"github.com/tern-iot/tern/cmd/ternd", "github.com/tern-iot/tern/runtime"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", host)
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", host, err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(line); slices.Contains(f[1:], sdk) {
				t.Errorf("%s links the guest SDK, package sdk: %s imports it; the host takes the ABI's types and codec from sdk/abi", host, f[0])
			}
		}
	}
	// The codec itself is a leaf: the standard library only, as wazero's
	// api package is, so that either side links it without the other.
	for _, dep := range deps("amd64", "github.com/tern-iot/tern/sdk/abi") {
		if dep != "github.com/tern-iot/tern/sdk/abi" && strings.Contains(strings.Split(dep, "/")[0], ".") {
			t.Errorf("package sdk/abi imports %s: the module ABI's codec imports only the standard library", dep)
		}
	}
	for _, dep := range deps("amd64", "github.com/tern-iot/tern/fleet") {
		for _, agent := range []string{"github.com/tetratelabs/wazero", "github.com/dgraph-io/badger", "go.etcd.io/bbolt", "github.com/tern-iot/tern/runtime/store/backend"} {
			if strings.HasPrefix(dep, agent) {
				t.Errorf("package fleet imports %s: the contract must not link the agent; take types from runtime/api and the store contract from runtime/store", dep)
			}
		}
	}
}

// Two builds of ternd for arm64 are byte for byte the same, and carry no
// path of the machine that built them.
func TestReproducibleBuild(t *testing.T) {
	first := ternd(t, "arm64", "", "v1-test")
	second := filepath.Join(t.TempDir(), "ternd")
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags=-s -w -buildid= -X github.com/tern-iot/tern/internal/version.Version=v1-test",
		"-o", second, "github.com/tern-iot/tern/cmd/ternd")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ: %d and %d bytes", len(a), len(b))
	}
	wd, _ := os.Getwd()
	repo := filepath.Dir(wd)
	if bytes.Contains(a, []byte(repo)) {
		t.Errorf("the binary holds the build path %s: -trimpath is missing", repo)
	}
}

// deb builds the amd64 .deb the way make dist does and returns its path.
func deb(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("./mkdeb.sh", ternd(t, "amd64", "", "1.2.3"), "amd64", "1.2.3", out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkdeb.sh: %v\n%s", err, b)
	}
	return strings.TrimSpace(string(b))
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeb(t *testing.T) {
	pkg := deb(t)
	fi, _ := os.Stat(pkg)
	t.Logf("%s: %d bytes", filepath.Base(pkg), fi.Size())

	t.Run("control", func(t *testing.T) {
		for field, want := range map[string]string{"Package": "ternd", "Version": "1.2.3", "Architecture": "amd64"} {
			if got := strings.TrimSpace(runCmd(t, "dpkg-deb", "-f", pkg, field)); got != want {
				t.Errorf("%s: %q, want %q", field, got, want)
			}
		}
		info := runCmd(t, "dpkg-deb", "-I", pkg)
		for _, want := range []string{"postinst", "prerm", "postrm", "conffiles", "Installed-Size:"} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb -I lacks %s:\n%s", want, info)
			}
		}
		dir := t.TempDir()
		runCmd(t, "dpkg-deb", "-e", pkg, dir)
		if conf, _ := os.ReadFile(filepath.Join(dir, "conffiles")); string(conf) != "/etc/tern/ternd.yaml\n" {
			t.Errorf("conffiles: %q", conf)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		a, _ := os.ReadFile(pkg)
		b, _ := os.ReadFile(deb(t))
		if !bytes.Equal(a, b) {
			t.Error("two .deb builds of the same binary differ")
		}
	})

	t.Run("tree", func(t *testing.T) {
		root := t.TempDir()
		runCmd(t, "dpkg-deb", "-x", pkg, root)
		for p, mode := range map[string]os.FileMode{
			"usr/bin/ternd":                             0o755,
			"lib/systemd/system/ternd.service":          0o644,
			"lib/systemd/system/tern-provision.service": 0o644,
			"etc/tern/ternd.yaml":                       0o640,
		} {
			fi, err := os.Stat(filepath.Join(root, p))
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), mode)
			}
		}
		if out := runCmd(t, filepath.Join(root, "usr/bin/ternd"), "version"); !strings.HasPrefix(out, "ternd 1.2.3 ") {
			t.Errorf("the packaged ternd says %q", out)
		}
		unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/ternd.service"))
		for _, want := range []string{
			"Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecStart=/usr/bin/ternd run --config /etc/tern/ternd.yaml",
			"User=tern", "SupplementaryGroups=gpio i2c dialout", "NoNewPrivileges=yes", "ProtectSystem=strict",
			"ProtectHome=yes", "PrivateTmp=yes", "StateDirectory=tern", "ConfigurationDirectory=tern", "ReadWritePaths=/var/lib/tern",
		} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).Match(unit) {
				t.Errorf("ternd.service lacks %q", want)
			}
		}
		verifyUnits(t, root)
	})

	t.Run("dpkg --root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("dpkg --root installs as root only (CI runs as root)")
		}
		root := scratchRoot(t)
		out := runCmd(t, "dpkg", "--root="+root, "--force-script-chrootless", "-i", pkg)
		t.Logf("%s", out)
		checkInstalled(t, root)
		if st := runCmd(t, "dpkg", "--root="+root, "-s", "ternd"); !strings.Contains(st, "Status: install ok installed") {
			t.Errorf("dpkg -s: %s", st)
		}
		// A self-updated binary is forgotten when a package is installed.
		os.MkdirAll(filepath.Join(root, "var/lib/tern/agent"), 0o750)
		os.Symlink("/var/lib/tern/agent/ternd-9", filepath.Join(root, "var/lib/tern/agent/current"))
		runCmd(t, "dpkg", "--root="+root, "--force-script-chrootless", "-i", pkg)
		if _, err := os.Lstat(filepath.Join(root, "var/lib/tern/agent/current")); !os.IsNotExist(err) {
			t.Errorf("reinstalling kept agent/current: %v", err)
		}
		runCmd(t, "dpkg", "--root="+root, "--force-script-chrootless", "--purge", "ternd")
		for _, gone := range []string{"usr/bin/ternd", "lib/systemd/system/ternd.service", "etc/tern/ternd.yaml", "var/lib/tern", "etc/systemd/system/multi-user.target.wants/ternd.service"} {
			if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
				t.Errorf("after purge, %s is still there (%v)", gone, err)
			}
		}
	})
}

// install.sh, for boards without dpkg, sets up the same tree, user and
// units as the package.
func TestInstallScript(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("install.sh runs as root only (CI runs as root)")
	}
	root := scratchRoot(t)
	cmd := exec.Command("./install.sh", ternd(t, runtime.GOARCH, "", "1.2.3"))
	cmd.Env = append(os.Environ(), "DESTDIR="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "installed ternd 1.2.3") {
		t.Errorf("install.sh said %q", out)
	}
	checkInstalled(t, root)
	verifyUnits(t, root)
	// Run again: the configuration an operator edited stays.
	os.WriteFile(filepath.Join(root, "etc/tern/ternd.yaml"), []byte("device: pi-9\n"), 0o640)
	cmd = exec.Command("./install.sh", ternd(t, runtime.GOARCH, "", "1.2.3"))
	cmd.Env = append(os.Environ(), "DESTDIR="+root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh again: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/tern/ternd.yaml")); string(b) != "device: pi-9\n" {
		t.Errorf("install.sh replaced the configuration: %q", b)
	}
}

// scratchRoot is an empty root with what dpkg and useradd --prefix need.
func scratchRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for p, s := range map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	} {
		os.WriteFile(filepath.Join(root, p), []byte(s), 0o644)
	}
	return root
}

// checkInstalled checks the tree, user and units postinst set up.
func checkInstalled(t *testing.T, root string) {
	t.Helper()
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	m := regexp.MustCompile(`(?m)^tern:x:(\d+):(\d+):[^:]*:/var/lib/tern:/usr/sbin/nologin$`).FindSubmatch(passwd)
	if m == nil {
		t.Fatalf("no tern system user in /etc/passwd:\n%s", passwd)
	}
	if uid, _ := strconv.Atoi(string(m[1])); uid >= 1000 {
		t.Errorf("tern has uid %d: not a system user", uid)
	}
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	for _, g := range []string{"gpio", "i2c", "dialout"} {
		if !regexp.MustCompile(`(?m)^` + g + `:x:\d+:(.*,)?tern(,.*)?$`).Match(group) {
			t.Errorf("tern is not in group %s:\n%s", g, group)
		}
	}
	fi, err := os.Stat(filepath.Join(root, "var/lib/tern"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("/var/lib/tern: mode %v, want 0750", fi.Mode().Perm())
	}
	for _, l := range []string{"ternd.service", "tern-provision.service"} {
		if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", l)); err != nil {
			t.Errorf("%s not enabled: %v", l, err)
		}
	}
}

// verifyUnits runs systemd-analyze verify on the units under root, with
// ExecStart pointed at the binary under root (verify checks it exists);
// any warning fails.
func verifyUnits(t *testing.T, root string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found: apt-get install -y systemd")
	}
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"ternd.service", "tern-provision.service"} {
		b, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", u))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/bin/ternd"), []byte(filepath.Join(root, "usr/bin/ternd")))
		os.WriteFile(filepath.Join(dir, u), b, 0o644)
		units = append(units, filepath.Join(dir, u))
	}
	out, err := exec.Command(sa, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=40", filepath.Join(dir, "ternd.service")).CombinedOutput()
	level := regexp.MustCompile(`Overall exposure level for ternd.service: (\S+)`).FindSubmatch(out)
	if err != nil || level == nil {
		t.Errorf("systemd-analyze security: exposure over 4.0, or no verdict: %v\n%s", err, out)
	} else {
		t.Logf("systemd-analyze security: exposure %s (0 safest, 10 unprotected)", level[1])
	}
}
