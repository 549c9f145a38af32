package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/internal/testbound"
)

// A release cut into chunks is put together again as the same release,
// whose one signature verifies in both forms; a chunk or a manifest that
// was changed is refused.
func TestSplitJoin(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	trust := signing.NewTrust(priv.Public().(ed25519.PublicKey))
	env := fleet.NewRelease("relay", 7, bigWasm(2*fleet.ChunkSize+100))
	env.SetTopics(topics)
	env.Sign(priv)

	manifest, chunks := env.Split(0)
	if len(chunks) != 3 || len(chunks[2]) != 100 || manifest.Wasm != nil || manifest.Format != fleet.ChunkedFormat {
		t.Fatalf("split into %d chunks (last %d bytes), manifest format %d with %d bytes of code", len(chunks), len(chunks[len(chunks)-1]), manifest.Format, len(manifest.Wasm))
	}
	if err := manifest.Verify(trust); err != nil {
		t.Fatalf("the manifest does not verify with the release's signature: %v", err)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := fleet.ParseReleaseEnvelope(b)
	if err != nil {
		t.Fatalf("the manifest does not parse: %v", err)
	}
	for i, c := range chunks {
		if err := parsed.CheckChunk(i, c); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := parsed.Join(chunks)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(whole, env) {
		t.Errorf("joined release differs from the one split")
	}
	if err := whole.Verify(trust); err != nil {
		t.Errorf("joined release does not verify: %v", err)
	}

	// A chunk of other code, or swapped with another, is refused.
	if err := parsed.CheckChunk(1, chunks[0]); !errors.Is(err, fleet.ErrHashMismatch) {
		t.Errorf("chunk 0 as chunk 1: err = %v, want ErrHashMismatch", err)
	}
	if err := parsed.CheckChunk(3, chunks[0]); err == nil {
		t.Error("a chunk past the last was taken")
	}
	// A manifest whose chunk hashes are consistent but whose code hash is
	// not (the chunks of other code): Join refuses, and the signature,
	// which covers the code hash, would too.
	other := fleet.NewRelease("relay", 7, bigWasm(2*fleet.ChunkSize+100))
	otherManifest, otherChunks := other.Split(0)
	forged := parsed
	forged.Chunks = otherManifest.Chunks
	if _, err := forged.Join(otherChunks); !errors.Is(err, fleet.ErrHashMismatch) {
		t.Errorf("chunks of other code: err = %v, want ErrHashMismatch", err)
	}

	for _, tc := range []struct {
		name string
		edit func(m *fleet.ReleaseEnvelope)
		want string
	}{
		{"a hash missing", func(m *fleet.ReleaseEnvelope) { m.Chunks.SHA256 = m.Chunks.SHA256[:2] }, "make 3 chunks, but \"chunks\" lists 2 hashes"},
		{"tiny chunks", func(m *fleet.ReleaseEnvelope) { m.Chunks.Size = 16 }, "chunks of 16 bytes; use 1024 to 1048576"},
		{"code inside", func(m *fleet.ReleaseEnvelope) { m.Wasm = env.Wasm }, `carries no "wasm"`},
		{"no chunks", func(m *fleet.ReleaseEnvelope) { m.Chunks = nil }, `needs "chunks"`},
		{"too large", func(m *fleet.ReleaseEnvelope) { m.Size = fleet.MaxModuleSize + 1 }, "over the 8388608-byte limit"},
	} {
		m := manifest
		c := *manifest.Chunks
		c.SHA256 = append([]string(nil), c.SHA256...)
		m.Chunks = &c
		tc.edit(&m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fleet.ParseReleaseEnvelope(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

// cutLink is a device's network that drops the first connection once
// cutAt bytes came through it, then refuses to connect until opened, and
// counts what each connection read.
type cutLink struct {
	cutAt int64
	open  chan struct{}

	mu     sync.Mutex
	conns  int
	read   []*atomic.Int64 // per connection
	dialed chan struct{}   // a dial waits for open
}

func (l *cutLink) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	n := l.conns
	l.conns++
	l.mu.Unlock()
	if n > 0 {
		select {
		case l.dialed <- struct{}{}:
		default:
		}
		select {
		case <-l.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	read := new(atomic.Int64)
	l.mu.Lock()
	l.read = append(l.read, read)
	l.mu.Unlock()
	cut := int64(-1)
	if n == 0 {
		cut = l.cutAt
	}
	return &countedConn{Conn: c, read: read, cut: cut}, nil
}

type countedConn struct {
	net.Conn
	read  *atomic.Int64
	cut   int64 // close once this many bytes were read; -1: never
	isCut atomic.Bool
}

// Read reports the cut as the peer resetting the connection: paho takes
// a connection closed locally for one closed on purpose, not for a lost
// one (testbench.Link does the same).
func (c *countedConn) Read(p []byte) (int, error) {
	if c.isCut.Load() {
		return 0, syscall.ECONNRESET
	}
	n, err := c.Conn.Read(p)
	if total := c.read.Add(int64(n)); c.cut >= 0 && total >= c.cut {
		c.isCut.Store(true)
		c.Conn.Close()
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	if c.isCut.Load() {
		return 0, syscall.ECONNRESET
	}
	return c.Conn.Write(p)
}

// A device whose link drops in the middle of a release keeps the chunks
// it had, and after reconnecting fetches only those it lacks.
func TestChunkedReleaseResumes(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		const size = 24 * fleet.ChunkSize // 6 MiB
		rel := fleet.NewRelease("relay", 1, bigWasm(size))
		rel.SetTopics(topics)
		if err := op.PushRelease(t.Context(), rel); err != nil {
			t.Fatal(err)
		}

		link := &cutLink{cutAt: size * 4 / 10, open: make(chan struct{}), dialed: make(chan struct{}, 1)}
		opts := testOptions(url, "pi-020")
		opts.Modules = []string{"relay"}
		opts.Dial = link.dial
		st := fleettest.Store(t)
		opts.Store = st
		d := newDevice(t, opts)
		run(t, d)

		testbound.WaitFor(t, "the link to be cut and the device to dial again", func() bool {
			select {
			case <-link.dialed:
				return true
			default:
				return false
			}
		})
		held := 0
		if err := st.Scan([]byte("fleet/chunk/module/relay/"), func(_, _ []byte) error { held++; return nil }); err != nil {
			t.Fatal(err)
		}
		if held < 2 {
			t.Fatalf("%d chunks kept when the link was cut after %d bytes; want at least 2", held, link.cutAt)
		}
		close(link.open)

		got := recv(t, d.Releases(), "the release")
		got.Issued = rel.Issued
		if !reflect.DeepEqual(got, rel) {
			t.Fatalf("the release changed on the way: version %d, %d bytes", got.Version, len(got.Wasm))
		}
		link.mu.Lock()
		second := link.read[1].Load()
		link.mu.Unlock()
		// What the second connection needed: the chunks missing (the one
		// in flight when the link went among them), one more for slack,
		// and a little for the manifest, acknowledgements and the target.
		need := int64(24-held+1)*fleet.ChunkSize + 64<<10
		if second > need {
			t.Errorf("after reconnecting the device read %d bytes; %d chunks of 24 were kept, so at most %d were needed: it fetched chunks again", second, held, need)
		}
		t.Logf("cut after %d bytes with %d chunks kept; the second connection read %d bytes", link.read[0].Load(), held, second)
		// The chunks stay, for the manifest that comes again with every
		// connection: the release is put together again from the store.
		n := 0
		if err := st.Scan([]byte("fleet/chunk/module/relay/"+rel.SHA256+"/"), func(_, _ []byte) error { n++; return nil }); err != nil || n != 24 {
			t.Errorf("%d chunks of the release in the store after it was put together (%v); want all 24 kept", n, err)
		}
	})
}

// TestReleaseOverSlowLink: a release reaches a device behind a link of
// 256 kbit/s that drops the connection now and then, intact, and targets
// pushed meanwhile reach the device while the release is still on its way.
// make test sends 768 KiB; make testbench (TERN_SLOWLINK_BYTES=3400000)
// a Go module's 3.4 MB, in about two minutes.
func TestReleaseOverSlowLink(t *testing.T) {
	t.Parallel()
	size := 3 * fleet.ChunkSize
	if s := os.Getenv("TERN_SLOWLINK_BYTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1024 || n > fleet.MaxModuleSize {
			t.Fatalf("TERN_SLOWLINK_BYTES=%q: want a size in bytes, 1024 to %d", s, fleet.MaxModuleSize)
		}
		size = n
	}
	const rate = 256 << 10 / 8 // 256 kbit/s
	broker := fleettest.Mosquitto(t)
	link := fleettest.NewSlowLink(t, broker, rate, 20*time.Second, 40*time.Second, 1)
	op := dialOperator(t, broker)
	rel := fleet.NewRelease("relay", 1, bigWasm(size))
	rel.SetTopics(topics)
	if err := op.PushRelease(t.Context(), rel); err != nil {
		t.Fatal(err)
	}

	opts := testOptions(link.URL, "pi-030")
	opts.Modules = []string{"relay"}
	d := newDevice(t, opts)
	start := time.Now()
	run(t, d)
	waitConnected(t, d)
	if err := op.PushTarget(t.Context(), "pi-030", fleet.TargetEnvelope{Version: 1, Target: json.RawMessage(`{"relays":{"fan":true}}`)}); err != nil {
		t.Fatal(err)
	}
	target := recv(t, d.Targets(), "the target pushed during the download")
	select {
	case <-d.Releases():
		t.Fatalf("the release (%d bytes at %d bytes/s) arrived before the target pushed after it started", size, rate)
	default:
	}
	if target.Version != 1 {
		t.Errorf("target version %d, want 1", target.Version)
	}
	// The bound: four times the time the bytes take at the link's rate,
	// and the hang bound on top.
	var got fleet.ReleaseEnvelope
	select {
	case got = <-d.Releases():
	case <-time.After(4*time.Duration(size)*time.Second/rate + testbound.Hang):
		t.Fatalf("no release after %v: %d bytes carried, %d drops", time.Since(start), link.Carried(), link.Drops())
	}
	took := time.Since(start)
	got.Issued = rel.Issued
	if !reflect.DeepEqual(got, rel) {
		t.Fatalf("the release changed on the way: version %d, %d bytes", got.Version, len(got.Wasm))
	}
	t.Logf("%d bytes over %d bytes/s in %v (lower bound %v), %d drops, %d bytes carried to the device",
		size, rate, took.Round(100*time.Millisecond), time.Duration(size)*time.Second/rate, link.Drops(), link.Carried())
}

// An agent release travels the same way: its compressed binary in chunks,
// the manifest signed as the whole, the binary checked after it was put
// together and decompressed.
func TestAgentSplitJoin(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	trust := signing.NewTrust(priv.Public().(ed25519.PublicKey))
	bin := append([]byte("\x7fELF"), bigWasm(3*fleet.ChunkSize)...) // random: compresses to about its size
	r, err := fleet.NewAgentRelease("arm64", 9, bin)
	if err != nil {
		t.Fatal(err)
	}
	r.SetTopics(topics)
	r.Sign(priv)
	manifest, chunks := r.Split(0)
	if len(chunks) != 4 || manifest.Chunks.Bytes != len(r.Gzip) || manifest.Gzip != nil {
		t.Fatalf("split into %d chunks, bytes %d (gzip %d)", len(chunks), manifest.Chunks.Bytes, len(r.Gzip))
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := fleet.ParseAgentRelease(b)
	if err != nil {
		t.Fatalf("the manifest does not parse: %v", err)
	}
	if err := parsed.Verify(trust); err != nil {
		t.Fatalf("the manifest does not verify with the release's signature: %v", err)
	}
	whole, err := parsed.Join(chunks)
	if err != nil {
		t.Fatal(err)
	}
	if string(whole.Binary) != string(bin) || whole.Format != fleet.Format || whole.Chunks != nil {
		t.Fatalf("joined: %d bytes of binary, format %d", len(whole.Binary), whole.Format)
	}
	if err := whole.Verify(trust); err != nil {
		t.Errorf("joined release does not verify: %v", err)
	}
	// Chunks of another binary whose hashes the manifest was given:
	// decompressed, they are not the signed binary.
	other, err := fleet.NewAgentRelease("arm64", 9, append([]byte("\x7fELF"), bigWasm(3*fleet.ChunkSize)...))
	if err != nil {
		t.Fatal(err)
	}
	om, oc := other.Split(0)
	forged := parsed
	forged.Chunks = om.Chunks
	if _, err := forged.Join(oc); !errors.Is(err, fleet.ErrHashMismatch) {
		t.Errorf("chunks of another binary: err = %v, want ErrHashMismatch", err)
	}
}
