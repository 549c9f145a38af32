package testbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ClusterOptions configure a [Cluster].
type ClusterOptions struct {
	// Dir holds each node's data directory (Dir/n1, …) and its log.
	Dir string
	// Nodes is how many nodes; default 3. The MQTT streams are kept on
	// every node up to 3 (nats-server's choice).
	Nodes int
	// Binary is the tern executable whose `tern broker` the nodes run.
	// Empty: [TernBinary] builds it.
	Binary string
}

// Cluster is a NATS cluster on loopback: Nodes `tern broker` processes,
// each with its own data directory, MQTT port and route port, routed to
// every other. What JetStream keeps for MQTT (sessions, retained
// messages, QoS 1 messages) is replicated across the nodes, so a node can
// die (Kill) and come back (Start) without the fleet losing anything.
type Cluster struct {
	bin   string
	nodes []*clusterNode
}

type clusterNode struct {
	name, mqtt, route, data string
	args                    []string
	log                     *lockedBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan error
}

// clusterNodes is how many nodes a scenario's cluster has.
const clusterNodes = 3

// clusterReady bounds how long a node may take to serve MQTT with its
// JetStream in the cluster: a meta leader elected and the MQTT streams
// placed, on a busy machine.
const clusterReady = 2 * time.Minute

// StartCluster starts every node and returns once each serves MQTT: a
// QoS 1 publish to it is acknowledged, which needs the cluster's
// JetStream. Close stops them.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("testbench: ClusterOptions.Dir is empty; the nodes need somewhere to keep their data")
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 2 {
		return nil, fmt.Errorf("testbench: a cluster of %d nodes; a cluster has 2 or more", o.Nodes)
	}
	if o.Binary == "" {
		bin, err := TernBinary(ctx)
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	c := &Cluster{bin: o.Binary}
	taken := map[string]bool{}
	for i := range o.Nodes {
		mqtt, err := fixedAddr(taken)
		if err != nil {
			return nil, err
		}
		route, err := fixedAddr(taken)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("n%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{name: name, mqtt: mqtt, route: route, data: filepath.Join(o.Dir, name), log: new(lockedBuffer)})
	}
	for i, n := range c.nodes {
		var routes []string
		for j, m := range c.nodes {
			if j != i {
				routes = append(routes, m.route)
			}
		}
		n.args = []string{"broker", "--listen", n.mqtt, "--data", n.data, "--cluster-listen", n.route, "--node", n.name, "--routes", strings.Join(routes, ",")}
	}
	if err := c.startAll(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// startAll starts every node that is not running and waits until each
// serves MQTT.
func (c *Cluster) startAll(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.start(c.bin); err != nil {
			return err
		}
	}
	for i := range c.nodes {
		if err := c.waitReady(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// fixedAddr is 127.0.0.1 with a free port below the kernel's range of
// ephemeral ports, and not in taken (which it adds to). A node keeps its
// ports across restarts, and a port from the ephemeral range could be
// taken meanwhile: by a node's own NATS client listener (a random port),
// or by any of ten thousand devices' connections as its local port.
func fixedAddr(taken map[string]bool) (string, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low <= 11000 {
		return freeAddr() // a kernel with every port ephemeral
	}
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(low-10000)))
		if taken[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		taken[addr] = true
		return addr, nil
	}
	return "", errors.New("testbench: no free port below the ephemeral range in 100 tries")
}

// URLs are the nodes' MQTT addresses, tcp://host:port, node 1 first.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = "tcp://" + n.mqtt
	}
	return urls
}

// Rotated is URLs starting at node i+1 (modulo the count): a device
// given it connects to that node first and fails over to the next.
func (c *Cluster) Rotated(i int) []string { return Rotate(c.URLs(), i) }

// Rotate is a copy of urls starting at index i modulo their count.
func Rotate(urls []string, i int) []string {
	i %= len(urls)
	return append(slices.Clone(urls[i:]), urls[:i]...)
}

// PIDs are the running nodes' process ids (0 for a node that is down).
func (c *Cluster) PIDs() []int {
	pids := make([]int, len(c.nodes))
	for i, n := range c.nodes {
		n.mu.Lock()
		if n.cmd != nil {
			pids[i] = n.cmd.Process.Pid
		}
		n.mu.Unlock()
	}
	return pids
}

// Kill sends node i (from 0) SIGKILL, as a power cut or an OOM kill
// would, and waits for it to be gone.
func (c *Cluster) Kill(i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	return n.stop(syscall.SIGKILL)
}

// Start starts node i again on its data directory and addresses, and
// returns once it serves MQTT in the cluster again.
func (c *Cluster) Start(ctx context.Context, i int) error {
	n, err := c.node(i)
	if err != nil {
		return err
	}
	if err := n.start(c.bin); err != nil {
		return err
	}
	return c.waitReady(ctx, i)
}

// Log is what node i has logged (its warnings and errors).
func (c *Cluster) Log(i int) string {
	if i < 0 || i >= len(c.nodes) {
		return ""
	}
	return c.nodes[i].log.String()
}

// Close stops every node (SIGTERM, then SIGKILL after a while). The data
// directories stay, under ClusterOptions.Dir.
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.stop(syscall.SIGTERM))
	}
	return errors.Join(errs...)
}

func (c *Cluster) node(i int) (*clusterNode, error) {
	if i < 0 || i >= len(c.nodes) {
		return nil, fmt.Errorf("testbench: the cluster has nodes 0 to %d, not %d", len(c.nodes)-1, i)
	}
	return c.nodes[i], nil
}

func (n *clusterNode) start(bin string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return nil
	}
	// A killed node's ports may linger a moment.
	for _, addr := range []string{n.mqtt, n.route} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			l, err := net.Listen("tcp", addr)
			if err == nil {
				l.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("testbench: cluster node %s: %s stays taken: %w", n.name, addr, err)
			}
		}
	}
	cmd := exec.Command(bin, n.args...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testbench: start cluster node %s: %w", n.name, err)
	}
	exit := make(chan error, 1)
	go func() { exit <- cmd.Wait() }()
	n.cmd, n.exit = cmd, exit
	return nil
}

func (n *clusterNode) stop(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.exit:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exit
	}
	n.cmd = nil
	return nil
}

// waitReady returns once node i acknowledges a QoS 1 publish, which it
// does once its JetStream is part of the cluster and the MQTT streams
// have a leader.
func (c *Cluster) waitReady(ctx context.Context, i int) error {
	n := c.nodes[i]
	ctx, cancel := context.WithTimeout(ctx, clusterReady)
	defer cancel()
	var last error
	for {
		n.mu.Lock()
		exit := n.exit
		n.mu.Unlock()
		select {
		case err := <-exit:
			exit <- err
			return fmt.Errorf("testbench: cluster node %s exited at start (%v): %s", n.name, err, n.log)
		default:
		}
		if last = probe(ctx, "tcp://"+n.mqtt); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbench: cluster node %s does not serve MQTT after %v (%v): %s", n.name, clusterReady, last, n.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// probe connects to url with a clean session and publishes at QoS 1.
func probe(ctx context.Context, url string) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("tern-testbench-probe-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second))
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer c.Disconnect(0)
	if err := wait(ctx, c.Publish("tern-testbench/probe", 1, false, "ready")); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// wait waits for tok or ctx.
func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clusterBroker is a scenario's broker when it is `broker: cluster`: a
// [Cluster] of three nodes, the observer an MQTT client with a persistent
// session that lists every node and fails over between them, as devices
// do. The node_down fault kills one node and starts it again.
type clusterBroker struct {
	c   *Cluster
	obs paho.Client
}

func newClusterBroker(ctx context.Context, dir, bin string, filters []string, watch func(string, []byte)) (*clusterBroker, error) {
	c, err := StartCluster(ctx, ClusterOptions{Dir: filepath.Join(dir, "cluster"), Nodes: clusterNodes, Binary: bin})
	if err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().SetClientID("tern-testbench-observer").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).
		SetOrderMatters(true).SetKeepAlive(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) { watch(msg.Topic(), msg.Payload()) })
	for _, u := range c.URLs() {
		opts.AddBroker(u)
	}
	b := &clusterBroker{c: c, obs: paho.NewClient(opts)}
	if tok := b.obs.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		b.Close()
		return nil, fmt.Errorf("testbench: observer cannot connect to the cluster: %v", tok.Error())
	}
	for _, f := range filters {
		if tok := b.obs.Subscribe(f, 1, nil); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			b.Close()
			return nil, fmt.Errorf("testbench: observer cannot subscribe to %s: %v", f, tok.Error())
		}
	}
	return b, nil
}

// URL is node 1's: the operator's. Agents spread over the three (Brokers).
func (b *clusterBroker) URL() string            { return b.c.URLs()[0] }
func (b *clusterBroker) Brokers(i int) []string { return b.c.Rotated(i) }

// kill kills node i (from 0) with SIGKILL; restart starts it again.
func (b *clusterBroker) kill(i int) error { return b.c.Kill(i) }
func (b *clusterBroker) restart(i int) error {
	return b.c.Start(context.Background(), i)
}

// Stop (broker_down) stops every node; Start starts them all again.
func (b *clusterBroker) Stop() error  { return b.c.Close() }
func (b *clusterBroker) Start() error { return b.c.startAll(context.Background()) }

func (b *clusterBroker) Close() error {
	if b.obs != nil {
		b.obs.Disconnect(100)
	}
	return b.c.Close()
}
