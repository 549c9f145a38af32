// Command watch measures how many simulated devices one `tern watch`
// process can follow: it starts a broker (Mosquitto, or the embedded one),
// makes N devices report retained state and online flags, starts
// `tern watch --json` on every device of the fleet, then has every device
// publish events (some twice, as QoS 1 redelivery would) at a steady rate
// and a last converged state. It counts what the watcher printed: every
// event once (dedup by seq), none lost, and reports the watcher's CPU time
// and peak RSS. See README.md.
//
// Devices are simulated as their topics: the reports travel through a pool
// of plain paho connections (-conns), which is what the watcher sees of
// a fleet anyway, and keeps the load generator cheap.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
)

func main() {
	devicesFlag := flag.String("devices", "1000,5000,10000", "comma-separated fleet sizes to run")
	events := flag.Int("events", 10, "events per device (a rollout: accepted, planned, tasks, converged)")
	rate := flag.Float64("rate", 1, "events per second per device while publishing (0: as fast as possible)")
	dups := flag.Float64("dups", 0.05, "fraction of events published twice")
	conns := flag.Int("conns", 64, "publishing connections")
	brokerKind := flag.String("broker", "mosquitto", "mosquitto, embedded, or a tcp://host:port URL")
	ternBin := flag.String("tern", "bin/tern", "the tern binary to measure")
	flag.Parse()
	for _, s := range strings.Split(*devicesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-devices: %q is not a positive number", s)
		}
		r, err := run(n, *events, *rate, *dups, *conns, *brokerKind, *ternBin)
		if err != nil {
			log.Fatalf("N=%d: %v", n, err)
		}
		fmt.Println(r)
	}
}

type result struct {
	devices, expected, got, dupShown, states int
	published                                int64
	publishFor, drainFor                     time.Duration
	cpu                                      time.Duration
	maxRSSKiB                                int64
	settle                                   time.Duration
}

func (r result) String() string {
	wall := r.publishFor + r.drainFor
	return fmt.Sprintf("N=%-6d events %d/%d received (%d lost, %d duplicates shown), %d published incl. duplicates, "+
		"retained states read in %v, publish %.1fs (%.0f ev/s offered), watcher %.0f ev/s, CPU %.2fs (%.0f%% of one core), max RSS %.1f MiB",
		r.devices, r.got, r.expected, r.expected-r.got, r.dupShown, r.published,
		r.settle.Round(time.Millisecond), r.publishFor.Seconds(), float64(r.published)/r.publishFor.Seconds(),
		float64(r.got)/wall.Seconds(), r.cpu.Seconds(), 100*r.cpu.Seconds()/(wall+r.settle).Seconds(), float64(r.maxRSSKiB)/1024)
}

func run(n, perDevice int, rate, dups float64, nconns int, brokerKind, ternBin string) (result, error) {
	res := result{devices: n, expected: n * perDevice}
	url, stop, err := startBroker(brokerKind)
	if err != nil {
		return res, err
	}
	defer stop()
	topics := fleet.Topics{Fleet: "bench"}

	pool := make([]paho.Client, nconns)
	for i := range pool {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("bench-%d", i)).
			SetCleanSession(true).SetOrderMatters(false).SetMaxResumePubInFlight(1000))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return res, fmt.Errorf("connect publisher: %v", tok.Error())
		}
		defer c.Disconnect(100)
		pool[i] = c
	}
	id := func(i int) string { return fmt.Sprintf("dev-%05d", i) }
	// publishAll runs f for every device, spread over the pool.
	publishAll := func(f func(c paho.Client, dev int) paho.Token) error {
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for w, c := range pool {
			wg.Go(func() {
				for dev := w; dev < n; dev += len(pool) {
					if tok := f(c, dev); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
						firstErr.CompareAndSwap(nil, fmt.Errorf("publish for %s: %v", id(dev), tok.Error()))
						return
					}
				}
			})
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return err
		}
		return nil
	}
	state := func(dev int, version uint64, converged bool) []byte {
		return fmt.Appendf(nil, `{"format":1,"device":%q,"groups":["bench"],"time":%q,"target_version":%d,"converged":%v,"phase":"idle","state":{"relays":{"heater":%v}},"modules":{"relay":"1.2.0"}}`,
			id(dev), time.Now().UTC().Format(time.RFC3339Nano), version, converged, converged)
	}
	if err := publishAll(func(c paho.Client, dev int) paho.Token {
		c.Publish(topics.Online(id(dev)), 1, true, "true")
		return c.Publish(topics.State(id(dev)), 1, true, state(dev, 1, true))
	}); err != nil {
		return res, err
	}

	// The watcher, on every device of the fleet.
	cmd := exec.Command(ternBin, "watch", "--broker", url, "--fleet", "bench", "--json", "--version", "2")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w (build it with make build)", ternBin, err)
	}
	var mu sync.Mutex
	seen := make(map[string]bool, res.expected)
	var got, dupShown, states atomic.Int64
	lines := make(chan struct{}, 1)
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m struct {
				Type   string `json:"type"`
				Device string `json:"device"`
				Seq    uint64 `json:"seq"`
			}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				readDone <- fmt.Errorf("watcher printed %q: %v", sc.Text(), err)
				return
			}
			switch m.Type {
			case "event":
				k := m.Device + "/" + strconv.FormatUint(m.Seq, 10)
				mu.Lock()
				if seen[k] {
					dupShown.Add(1)
				} else {
					seen[k] = true
					got.Add(1)
				}
				mu.Unlock()
			case "state":
				states.Add(1)
			}
			select {
			case lines <- struct{}{}:
			default:
			}
		}
		readDone <- sc.Err()
	}()
	// Wait for the retained states: then the watcher has subscribed.
	for states.Load() < int64(n) {
		select {
		case <-lines:
		case err := <-readDone:
			return res, fmt.Errorf("watcher ended early: %v", err)
		case <-time.After(60 * time.Second):
			return res, fmt.Errorf("watcher printed %d of %d retained states in 60s", states.Load(), n)
		}
	}
	res.settle = time.Since(started)

	// Events, at rate per device, some twice; then the converged state.
	var published atomic.Int64
	start := time.Now()
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) / rate)
	}
	kinds := []string{"target.accepted", "plan.found", "task.started", "task.done", "converged"}
	for seq := 1; seq <= perDevice; seq++ {
		round := start.Add(time.Duration(seq-1) * interval)
		time.Sleep(time.Until(round))
		if err := publishAll(func(c paho.Client, dev int) paho.Token {
			e := fmt.Appendf(nil, `{"format":1,"device":%q,"seq":%d,"id":"%s-%d","time":%q,"kind":%q,"target_version":2,"module":"relay","job":"switch","path":"/relays/heater"}`,
				id(dev), seq, id(dev), seq, time.Now().UTC().Format(time.RFC3339Nano), kinds[seq%len(kinds)])
			topic := topics.Events(id(dev))
			published.Add(1)
			if float64((dev*7919+seq*104729)%1000)/1000 < dups {
				published.Add(1)
				c.Publish(topic, 1, false, e)
			}
			return c.Publish(topic, 1, false, e)
		}); err != nil {
			return res, err
		}
	}
	if err := publishAll(func(c paho.Client, dev int) paho.Token {
		return c.Publish(topics.State(id(dev)), 1, true, state(dev, 2, true))
	}); err != nil {
		return res, err
	}
	res.publishFor = time.Since(start)
	res.published = published.Load()

	// Drain: until every event arrived, or nothing new for 5s.
	drainStart := time.Now()
	for got.Load() < int64(res.expected) {
		select {
		case <-lines:
			continue
		case <-time.After(5 * time.Second):
		}
		break
	}
	res.drainFor = time.Since(drainStart)
	_ = cmd.Process.Signal(os.Interrupt)
	<-readDone
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("watcher: %v", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res.maxRSSKiB = ru.Maxrss
	res.got, res.dupShown, res.states = int(got.Load()), int(dupShown.Load()), int(states.Load())
	return res, nil
}

// startBroker starts the broker to measure against and returns its URL.
func startBroker(kind string) (string, func(), error) {
	switch kind {
	case "embedded":
		b, err := devbroker.New("127.0.0.1:0", nil)
		if err != nil {
			return "", nil, err
		}
		if err := b.Start(); err != nil {
			return "", nil, err
		}
		return b.URL(), func() { _ = b.Close() }, nil
	case "mosquitto":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		addr := l.Addr().(*net.TCPAddr)
		_ = l.Close()
		dir, err := os.MkdirTemp("", "tern-bench-watch")
		if err != nil {
			return "", nil, err
		}
		conf := filepath.Join(dir, "mosquitto.conf")
		// max_queued_messages: the watcher's share of a burst must fit, or
		// mosquitto drops QoS 1 messages for it (counted as lost).
		cfg := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\n", addr.Port)
		if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
			return "", nil, err
		}
		bin := "mosquitto"
		if _, err := exec.LookPath(bin); err != nil {
			bin = "/usr/sbin/mosquitto"
		}
		cmd := exec.Command(bin, "-c", conf)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return "", nil, fmt.Errorf("start mosquitto: %w", err)
		}
		stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
		for deadline := time.Now().Add(10 * time.Second); ; {
			c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				stop()
				return "", nil, fmt.Errorf("mosquitto did not listen on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return "tcp://" + addr.String(), stop, nil
	}
	if strings.HasPrefix(kind, "tcp://") {
		return kind, func() {}, nil
	}
	return "", nil, fmt.Errorf("-broker %q: want mosquitto, embedded or tcp://host:port", kind)
}
