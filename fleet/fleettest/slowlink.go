package fleettest

import (
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SlowLink is a TCP proxy on loopback in front of a broker that behaves
// like a poor cellular link: each direction of each connection carries at
// most Rate bytes a second, and every connection is dropped (reset) after
// a random time between DropMin and DropMax. Clients connect to URL.
type SlowLink struct {
	URL string

	rate             int
	dropMin, dropMax time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	rng   *rand.Rand
	drops atomic.Int64
	bytes atomic.Int64 // carried towards clients
}

// NewSlowLink starts a slow link to the broker at brokerURL (tcp://…),
// carrying rate bytes a second each way and dropping each connection
// after a time in [dropMin, dropMax] (no drops when dropMax is 0); seed
// makes the drop times repeatable. It stops when the test ends.
func NewSlowLink(t testing.TB, brokerURL string, rate int, dropMin, dropMax time.Duration, seed uint64) *SlowLink {
	t.Helper()
	u, err := url.Parse(brokerURL)
	if err != nil || u.Scheme != "tcp" {
		t.Fatalf("fleettest: slow link to %q: want tcp://host:port", brokerURL)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fleettest: slow link: %v", err)
	}
	s := &SlowLink{
		URL: "tcp://" + l.Addr().String(), rate: rate, dropMin: dropMin, dropMax: dropMax,
		conns: map[net.Conn]struct{}{}, rng: rand.New(rand.NewPCG(seed, seed)),
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c, u.Host) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	return s
}

// Drops counts the connections the link dropped.
func (s *SlowLink) Drops() int64 { return s.drops.Load() }

// Carried counts the bytes carried towards clients.
func (s *SlowLink) Carried() int64 { return s.bytes.Load() }

func (s *SlowLink) serve(client net.Conn, upstream string) {
	broker, err := net.Dial("tcp", upstream)
	if err != nil {
		client.Close()
		return
	}
	s.mu.Lock()
	s.conns[client], s.conns[broker] = struct{}{}, struct{}{}
	var life time.Duration
	if s.dropMax > 0 {
		life = s.dropMin + time.Duration(s.rng.Int64N(int64(s.dropMax-s.dropMin)+1))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(done)
			if tc, ok := client.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset, as a dead link gives
			}
			client.Close()
			broker.Close()
			s.mu.Lock()
			delete(s.conns, client)
			delete(s.conns, broker)
			s.mu.Unlock()
		})
	}
	if life > 0 {
		timer := time.AfterFunc(life, func() { s.drops.Add(1); end() })
		defer timer.Stop()
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.pipe(client, broker, &s.bytes); end() }) // towards the client
	wg.Go(func() { s.pipe(broker, client, nil); end() })
	wg.Wait()
}

// pipe copies from src to dst at most s.rate bytes a second, counting
// them in count (if not nil).
func (s *SlowLink) pipe(dst io.Writer, src io.Reader, count *atomic.Int64) {
	buf := make([]byte, 1024)
	start := time.Now()
	var sent int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
			if count != nil {
				count.Add(int64(n))
			}
			// Hold back until the bytes sent fit the rate.
			if ahead := time.Duration(sent)*time.Second/time.Duration(s.rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if err != nil {
			return
		}
	}
}
