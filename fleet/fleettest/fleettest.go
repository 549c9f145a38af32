package fleettest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet/devbroker"
	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// startTimeout bounds how long a broker may take to accept connections.
const startTimeout = 10 * time.Second

// Embedded starts the embedded broker ([fleet.Broker]) on a free port of
// 127.0.0.1 and returns its URL, tcp://127.0.0.1:port.
func Embedded(t testing.TB) string {
	t.Helper()
	return EmbeddedAt(t, "127.0.0.1:0")
}

// EmbeddedAt starts the embedded broker on addr (host:port) and returns its
// URL.
func EmbeddedAt(t testing.TB, addr string) string {
	t.Helper()
	log := new(LogBuffer)
	b, err := devbroker.New(addr, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, b, log, "embedded broker")
}

// Mosquitto starts a mosquitto process on a free port of 127.0.0.1 with a
// generated configuration (anonymous access, no persistence, log to
// stderr), waits until it accepts connections and returns its URL,
// tcp://127.0.0.1:port. The process is stopped when the test ends.
func Mosquitto(t testing.TB) string {
	t.Helper()
	bin := mosquittoBinary(t)
	var err error
	for range 3 { // the free port may be taken before mosquitto binds it
		var url string
		if url, err = startMosquitto(t, bin, FreeAddr(t)); err == nil {
			return url
		}
	}
	t.Fatal(err)
	return ""
}

// MosquittoAt starts mosquitto on addr, 127.0.0.1:port, and returns its URL.
func MosquittoAt(t testing.TB, addr string) string {
	t.Helper()
	url, err := startMosquitto(t, mosquittoBinary(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// FreeAddr returns 127.0.0.1:port with a port that was free a moment ago,
// for a broker that a test starts later.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fleettest: find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("fleettest: find a free port: %v", err)
	}
	return addr
}

// FreeAddrs returns n different addresses 127.0.0.1:port, each free a
// moment ago: they are picked with every listener held open, so the
// kernel cannot hand out one port twice (FreeAddr called n times can).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("fleettest: find a free port: %v", err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

func mosquittoBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("mosquitto not found: apt-get install -y mosquitto")
	return ""
}

// startMosquitto runs mosquitto on addr. On failure it returns an error
// carrying mosquitto's log; on success the process is stopped in
// t.Cleanup.
func startMosquitto(t testing.TB, bin, addr string) (string, error) {
	return startMosquittoWith(t, bin, addr, "tcp", "allow_anonymous true\n")
}

// MosquittoWithACL starts mosquitto that requires a login: users maps
// usernames to passwords, acl is the path of an acl_file.
func MosquittoWithACL(t testing.TB, users map[string]string, acl string) string {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwords")
	for u, p := range users {
		args := []string{"-b", pw, u, p}
		if _, err := os.Stat(pw); err != nil {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(passwdBinary(t), args...).CombinedOutput(); err != nil {
			t.Fatalf("fleettest: mosquitto_passwd: %v: %s", err, out)
		}
	}
	extra := fmt.Sprintf("allow_anonymous false\npassword_file %s\nacl_file %s\n", pw, acl)
	var err error
	for range 3 {
		var url string
		if url, err = startMosquittoWith(t, mosquittoBinary(t), FreeAddr(t), "tcp", extra); err == nil {
			return url
		}
	}
	t.Fatal(err)
	return ""
}

func passwdBinary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"mosquitto_passwd", "/usr/bin/mosquitto_passwd"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("mosquitto_passwd not found: apt-get install -y mosquitto")
	return ""
}

// startMosquittoWith runs mosquitto on addr with extra lines of
// configuration for the listener, and returns its URL with scheme.
func startMosquittoWith(t testing.TB, bin, addr, scheme, extra string) (string, error) {
	t.Helper()
	stop, log, err := launchMosquitto(t, bin, addr, extra)
	if err != nil {
		return "", err
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("mosquitto %s log:\n%s", addr, log)
		}
	})
	return scheme + "://" + addr, nil
}

// launchMosquitto runs mosquitto on addr with the generated configuration
// plus extra lines (which may override it, e.g. "persistence true"), waits
// until it accepts connections and returns how to stop it and its log.
func launchMosquitto(t testing.TB, bin, addr, extra string) (stop func(), log *LogBuffer, err error) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("fleettest: mosquitto address %q: %w", addr, err)
	}
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to the mosquitto user, which
		// can neither read nor write the test's private temporary
		// directories (password file, ACL, persistence).
		extra += "user root\n"
	}
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	config := fmt.Sprintf(`# generated by fleettest for %s
listener %s %s
persistence false
%slog_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
log_type unsubscribe
connection_messages true
log_timestamp_format %%H:%%M:%%S
`, t.Name(), port, host, extra)
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		return nil, nil, fmt.Errorf("fleettest: write mosquitto config: %w", err)
	}

	log = new(LogBuffer)
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("fleettest: start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends with the process, which stop ends

	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM) // mosquitto saves its persistence file on SIGTERM
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case err := <-exited:
			return nil, nil, fmt.Errorf("fleettest: mosquitto on %s exited at start (%v); its log:\n%s", addr, err, log)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 250*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return stop, log, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("fleettest: mosquitto on %s does not accept connections after %v (%v); its log:\n%s", addr, startTimeout, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogBuffer collects a process's or a broker's log for t.Log, written from
// their own goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a logger that keeps a component's log (debug level and
// up) and prints it, headed by name, if the test failed.
func Logger(t testing.TB, name string) *slog.Logger {
	t.Helper()
	buf := new(LogBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve starts b, stops it when the test ends, prints its log (kept in
// log) if the test failed, and returns its URL.
func serve(t testing.TB, b *devbroker.Broker, log *LogBuffer, what string) string {
	t.Helper()
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	running.Store(b.URL(), b)
	t.Cleanup(func() {
		running.CompareAndDelete(b.URL(), b)
		closeBroker(t, b)
		if t.Failed() {
			t.Logf("%s %s log:\n%s", what, b.Addr(), log)
		}
	})
	return b.URL()
}

// running holds the embedded brokers the tests run, by URL.
var running sync.Map

// SyncRetained waits until the broker at url serves every retained
// message it has acknowledged to new subscriptions. The embedded broker
// (nats-server) indexes a retained message milliseconds after it
// acknowledged it (devbroker.Broker.SyncRetained, docs/mqtt.md): a test
// that publishes retained and then subscribes to see it calls this in
// between. Mosquitto indexes before it acknowledges: nothing to wait for.
func SyncRetained(t testing.TB, url string) {
	t.Helper()
	b, ok := running.Load(url)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), testbound.Hang)
	defer cancel()
	if err := b.(*devbroker.Broker).SyncRetained(ctx); err != nil {
		t.Fatal(err)
	}
}

// Store opens a store (runtime/store, as ternd does) in a new temporary
// directory, for a device's outbox, and closes it when the test ends.
func Store(t testing.TB) store.Store {
	t.Helper()
	return StoreAt(t, t.TempDir())
}

// StoreAt opens the store in dir; a test that restarts a device opens the
// same directory again after closing the first. Closing it twice is
// harmless.
func StoreAt(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := backend.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// closeBroker closes b; an error fails the test.
func closeBroker(t testing.TB, b *devbroker.Broker) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}

// EmbeddedCluster starts n embedded brokers in process as one NATS
// cluster on loopback, the MQTT streams kept on every node (up to 3), and
// returns their URLs, node 1 first, once each is a current member of the
// cluster's JetStream. stop stops node i (from 0) early; every node stops
// when the test ends.
func EmbeddedCluster(t testing.TB, n int) (urls []string, stop func(i int)) {
	t.Helper()
	// One distinct port each: a route that landed on another node's MQTT
	// port kept the cluster from forming (seen under load).
	addrs := FreeAddrs(t, 2*n)
	mqtt, routes := addrs[:n], addrs[n:]
	brokers := make([]*devbroker.Broker, n)
	for i := range n {
		others := append(slices.Clone(routes[:i]), routes[i+1:]...)
		log := new(LogBuffer)
		b, err := devbroker.Open(mqtt[i], devbroker.Options{
			Logger:  slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Cluster: devbroker.Cluster{Node: fmt.Sprintf("n%d", i+1), Listen: routes[i], Routes: others},
		})
		if err != nil {
			t.Fatal(err)
		}
		brokers[i] = b
		urls = append(urls, serve(t, b, log, fmt.Sprintf("cluster node n%d", i+1)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), testbound.Hang)
	defer cancel()
	for _, b := range brokers {
		if err := b.WaitCluster(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return urls, func(i int) { closeBroker(t, brokers[i]) }
}
