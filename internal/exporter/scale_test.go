package exporter_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
)

// TestExporterScale measures what tern exporter costs while it follows
// TERN_EXPORTER_DEVICES devices (set it to run; e.g. 10000): a real tern
// exporter process and a Mosquitto process, and in this process one MQTT
// client that publishes, for every device, a retained state report (with
// its agent block), its online flag and TERN_EXPORTER_EVENTS events (3
// by default). It waits until the exporter has every device and every
// event, and reports the exporter's CPU time and peak resident memory
// (/proc/PID/stat, VmHWM), then after a few /metrics scrapes. Not in
// the default run.
func TestExporterScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TERN_EXPORTER_DEVICES"))
	if n <= 0 {
		t.Skip("set TERN_EXPORTER_DEVICES=10000 to measure the exporter following that many devices")
	}
	perDevice := 3
	if v, err := strconv.Atoi(os.Getenv("TERN_EXPORTER_EVENTS")); err == nil && v >= 0 {
		perDevice = v
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tern")
	build := exec.Command("go", "build", "-o", bin, "github.com/tern-iot/tern/cmd/tern")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build tern: %v", err)
	}
	broker := scaleMosquitto(t, dir)

	httpAddr := freeAddr(t)
	cmd := exec.Command(bin, "exporter", "--broker", broker, "--fleet", "scale", "--data", filepath.Join(dir, "data"), "--listen", httpAddr)
	logf, _ := os.Create(filepath.Join(dir, "exporter.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	base := "http://" + httpAddr
	waitMetric(t, base, "tern_devices", 0, time.Minute)
	cpu0, _ := procUsage(t, cmd.Process.Pid)

	start := time.Now()
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("scale-pub").SetCleanSession(true).SetOrderMatters(false))
	if tok := pub.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	topics := fleet.Topics{Fleet: "scale"}
	var inflight sync.WaitGroup
	sem := make(chan struct{}, 512)
	publish := func(topic string, retained bool, payload []byte) {
		sem <- struct{}{}
		inflight.Add(1)
		tok := pub.Publish(topic, 1, retained, payload)
		go func() {
			defer inflight.Done()
			tok.Wait()
			if tok.Error() != nil {
				t.Error(tok.Error())
			}
			<-sem
		}()
	}
	now := time.Now()
	for i := range n {
		id := fmt.Sprintf("pi-%05d", i)
		st, _ := json.Marshal(fleet.StateReport{Format: fleet.ReportFormat, Device: id, Groups: []string{"g" + strconv.Itoa(i%50)}, Status: api.Status{
			Time: now, TargetVersion: 7, Converged: i%10 != 0, Phase: api.PhaseIdle, State: json.RawMessage(`{"relays":{"heater":true,"fan":false},"temp":21.5}`),
			Modules:  map[string]string{"relay": "1.2.0", "thermostat": "0.9.1"},
			Agent:    &api.AgentInfo{Version: "1.4.0", Arch: "arm64", Board: "Raspberry Pi 4 Model B Rev 1.5", Kernel: "6.6.31", Started: now, Store: "badger", DiskFree: 12 << 30, OutboxDepth: i % 7, RSS: 40 << 20},
			Facts:    map[string]string{"site": "north", "floor": strconv.Itoa(i % 5)},
			Rollouts: map[string]api.RolloutStatus{"relay-20261206": {Wave: 1 + i%4, Phase: api.RolloutSucceeded, Since: now}},
		}})
		publish(topics.State(id), true, st)
		publish(topics.Online(id), true, []byte("true"))
		for s := 1; s <= perDevice; s++ {
			ev, _ := json.Marshal(fleet.EventReport{Format: fleet.ReportFormat, Device: id, Seq: uint64(s), Epoch: "e1",
				Event: api.Event{ID: fmt.Sprintf("%s-%d", id, s), Time: now, Kind: api.EventTaskDone, TargetVersion: 7, Module: "relay", Job: "switch", Path: "/relays/heater"}})
			publish(topics.Events(id), false, ev)
		}
	}
	inflight.Wait()
	published := time.Since(start)
	pub.Disconnect(100)
	waitMetric(t, base, "tern_devices", float64(n), 30*time.Minute)
	waitMetric(t, base, "tern_exporter_events_stored", float64(n*perDevice), 60*time.Minute)
	caught := time.Since(start)
	cpu1, hwm := procUsage(t, cmd.Process.Pid)
	// A few scrapes of the whole fleet.
	const scrapes = 5
	var size int
	s0 := time.Now()
	for range scrapes {
		size = len(getBody(t, base+"/metrics"))
	}
	scrapeWall := time.Since(s0) / scrapes
	cpu2, hwm2 := procUsage(t, cmd.Process.Pid)
	st, _ := os.Stat(filepath.Join(dir, "data", "events.db"))
	t.Logf("%d devices, %d events each: published in %v, exporter caught up after %v", n, perDevice, published.Round(time.Millisecond), caught.Round(time.Millisecond))
	t.Logf("exporter CPU while following: %.2f s (%.1f ms per device, %.0f µs per message); peak RSS %.1f MiB", (cpu1 - cpu0).Seconds(),
		(cpu1-cpu0).Seconds()*1000/float64(n), (cpu1-cpu0).Seconds()*1e6/float64(n*(2+perDevice)), float64(hwm)/(1<<20))
	t.Logf("/metrics: %d bytes, %.0f ms CPU and %v wall per scrape; peak RSS after scrapes %.1f MiB; events.db %.1f MiB",
		size, (cpu2-cpu1).Seconds()*1000/scrapes, scrapeWall.Round(time.Millisecond), float64(hwm2)/(1<<20), float64(st.Size())/(1<<20))
}

// scaleMosquitto runs mosquitto with queues large enough for a burst of
// the whole fleet's retained reports.
func scaleMosquitto(t *testing.T, dir string) string {
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "mosquitto.conf")
	extra := ""
	if os.Geteuid() == 0 {
		extra = "user root\n"
	}
	os.WriteFile(conf, fmt.Appendf(nil, "listener %s %s\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n%slog_dest stderr\nlog_type error\n", port, host, extra), 0o644)
	cmd := exec.Command("mosquitto", "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto: %v (apt-get install -y mosquitto)", err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "tcp://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto does not listen")
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func getBody(t *testing.T, url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// waitMetric polls the exporter's /metrics until the unlabelled sample
// name reaches want.
func waitMetric(t *testing.T, base, name string, want float64, bound time.Duration) {
	re := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		if m := re.FindSubmatch(getBody(t, base+"/metrics")); m != nil {
			last = string(m[1])
			if v, _ := strconv.ParseFloat(last, 64); v >= want {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s is %s after %v, want %v", name, last, bound, want)
}

// procUsage reads a process's CPU time (user + system) and peak resident
// memory.
func procUsage(t *testing.T, pid int) (cpu time.Duration, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			hwm = kb << 10
		}
	}
	return cpu, hwm
}
