// Command planner is the planner benchmark: the problems of PROBLEMS.md
// given to tern (jobs in Wasm) and to Mahler 4.1.5 (jobs in JavaScript),
// side by side in one run, one line per problem with the speed-up.
//
//	bench/planner/run.sh            # or: make bench-planner
//	go run ./bench/planner -mahler=false -runs 20
//
// Each side times only the search (building the problem and loading the
// modules are not timed) and reports the median of its runs. Every tern
// run is a whole search: no answer is remembered from an earlier run
// (within a run the planner remembers answers, see runtime/plan). A last
// line measures what one call across the sandbox boundary costs, against
// the same job written in native Go.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/internal/wasmbuild"
	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/sdk"
)

type problem struct {
	name    string
	module  string // import path of the job module
	current any
	target  any
	actions int
}

func counters(n int, value float64) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("c%04d", i)] = value
	}
	return map[string]any{"counters": m}
}

func components(n int, value string) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[fmt.Sprintf("c%02d", i)] = map[string]any{"state": value}
	}
	return map[string]any{"components": m}
}

func problems() []problem {
	const mod = "github.com/tern-iot/tern/bench/planner/modules/"
	var ps []problem
	for _, n := range []int{10, 100, 1000} {
		ps = append(ps, problem{
			name: fmt.Sprintf("counters-%d", n), module: mod + "counters",
			current: counters(n, 0), target: counters(n, 2), actions: 2 * n,
		})
	}
	ps = append(ps, problem{
		name: "components-50", module: mod + "components",
		current: components(50, "absent"), target: components(10, "running"), actions: 30,
	})
	ps = append(ps, problem{
		name: "methods-20", module: mod + "methods",
		current: counters(20, 0), target: counters(20, 10), actions: 200,
	})
	return ps
}

type result struct {
	ms          float64
	runs, calls int
	tasks       int
}

func main() {
	runs := flag.Int("runs", 5, "at least this many timed runs per problem (and at least 1 s of them)")
	only := flag.String("problems", "", "comma-separated problem names; empty: all")
	withMahler := flag.Bool("mahler", true, "also run Mahler (needs node and bench/planner/mahler/node_modules: run.sh installs them)")
	flag.Parse()
	ctx := context.Background()

	var mahler map[string]mahlerResult
	var mahlerInfo string
	if *withMahler {
		var err error
		if mahler, mahlerInfo, err = runMahler(*only); err != nil {
			fail("mahler: %v", err)
		}
	}
	fmt.Printf("planner benchmark: tern (jobs in Wasm, wazero %s, %s/%s, GOMAXPROCS=%d)%s\n",
		wazeroVersion(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), mahlerInfo)
	for _, p := range problems() {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), p.name) {
			continue
		}
		r, err := measure(ctx, p, *runs)
		if err != nil {
			fail("%s: %v", p.name, err)
		}
		line := fmt.Sprintf("problem=%-14s actions=%-5d calls=%-4d tern=%.3fms", p.name, r.tasks, r.calls, r.ms)
		if p.name == "components-50" {
			line += fmt.Sprintf(" plans/s=%.0f", 1000/r.ms)
		}
		if m, ok := mahler[p.name]; ok {
			if m.MS == nil {
				line += fmt.Sprintf(" mahler=failed(%s)", m.Error)
			} else {
				if m.Actions != r.tasks {
					fail("%s: Mahler's plan has %d actions, tern's %d: not the same problem", p.name, m.Actions, r.tasks)
				}
				line += fmt.Sprintf(" mahler=%.3fms speedup=%.1f", *m.MS, *m.MS/r.ms)
			}
		}
		fmt.Println(line)
	}
	wasmUS, nativeUS, err := boundary(ctx)
	if err != nil {
		fail("boundary: %v", err)
	}
	fmt.Printf("boundary: one tern_try call into the sandbox %.2fus, the same job native %.3fus (counters plus_one)\n", wasmUS, nativeUS)
}

// boundary times one planning call (plus_one's tern_try) through the
// sandbox and natively, in microseconds.
func boundary(ctx context.Context) (wasmUS, nativeUS float64, err error) {
	wasm, err := wasmbuild.Cached("github.com/tern-iot/tern/bench/planner/modules/counters")
	if err != nil {
		return 0, 0, err
	}
	pl, err := tern.NewPlanner(ctx, tern.PlannerOptions{Modules: []tern.ModuleSpec{{Wasm: wasm}}, CacheDir: cacheDir()})
	if err != nil {
		return 0, 0, err
	}
	defer pl.Close(ctx)
	j := pl.Jobs()[0]
	c := sdk.Call{Job: j.Spec.Name, Path: "/counters/c0000", Params: map[string]string{"name": "c0000"}, Current: json.RawMessage("1"), Target: json.RawMessage("2")}
	per := func(ev plan.Evaluator) (float64, error) {
		const n = 20000
		start := time.Now()
		for range n {
			if r, err := ev.Try(ctx, j, c, nil); err != nil || !r.OK {
				return 0, fmt.Errorf("try: %v, %v", r.OK, err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / n / 1000, nil
	}
	if wasmUS, err = per(pl.Evaluator()); err != nil {
		return 0, 0, err
	}
	nativeUS, err = per(nativeCounters{})
	return wasmUS, nativeUS, err
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/planner: "+format+"\n", args...)
	os.Exit(1)
}

// measure plans p with its module in Wasm, and natively, and returns the
// median times.
func measure(ctx context.Context, p problem, minRuns int) (result, error) {
	wasm, err := wasmbuild.Cached(p.module)
	if err != nil {
		return result{}, err
	}
	pl, err := tern.NewPlanner(ctx, tern.PlannerOptions{Modules: []tern.ModuleSpec{{Wasm: wasm}}, CacheDir: cacheDir()})
	if err != nil {
		return result{}, err
	}
	defer pl.Close(ctx)
	opts := plan.Options{Limits: plan.Limits{Time: 5 * time.Minute}}
	var r result
	var last *plan.Plan
	r.ms, r.runs, err = median(minRuns, func() error {
		last, err = pl.Find(ctx, p.current, p.target, opts)
		return err
	})
	if err != nil {
		return r, err
	}
	r.tasks, r.calls = len(last.Tasks), last.Stats.Calls
	if r.tasks != p.actions {
		return r, fmt.Errorf("plan has %d actions, PROBLEMS.md says %d", r.tasks, p.actions)
	}
	return r, nil
}

// median runs fn once to warm up, then at least minRuns times and for at
// least a second, and returns the median in milliseconds.
func median(minRuns int, fn func() error) (float64, int, error) {
	if err := fn(); err != nil {
		return 0, 0, err
	}
	var ds []time.Duration
	start := time.Now()
	for len(ds) < minRuns || time.Since(start) < time.Second && len(ds) < 1000 {
		t := time.Now()
		if err := fn(); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Nanoseconds()) / 1e6, len(ds), nil
}

func cacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "tern", "bench-wazero")
}

type mahlerResult struct {
	Name    string   `json:"name"`
	MS      *float64 `json:"ms"`
	Runs    int      `json:"runs"`
	Actions int      `json:"actions"`
	Error   string   `json:"error"`
}

// runMahler runs the Mahler side (bench/planner/mahler/bench.mjs) and
// returns its results by problem. Methods are expanded sequentially, the
// faster of Mahler's documented modes for these problems.
func runMahler(only string) (map[string]mahlerResult, string, error) {
	dir := filepath.Join("bench", "planner", "mahler")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mahler")); err != nil {
		return nil, "", fmt.Errorf("mahler is not installed: run bench/planner/run.sh (it runs npm ci in %s)", dir)
	}
	args := []string{"bench.mjs", "--expansion", "sequential"}
	if only != "" {
		args = append(args, strings.Split(only, ",")...)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	fmt.Fprintln(os.Stderr, "bench/planner: running Mahler (about a minute)...")
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("node bench.mjs: %w", err)
	}
	var res struct {
		Mahler   string         `json:"mahler"`
		Node     string         `json:"node"`
		Problems []mahlerResult `json:"problems"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, "", fmt.Errorf("reading its output: %w", err)
	}
	m := map[string]mahlerResult{}
	for _, p := range res.Problems {
		m[p.Name] = p
	}
	return m, fmt.Sprintf(" vs Mahler %s (node %s)", res.Mahler, res.Node), nil
}

func wazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				return d.Version
			}
		}
	}
	return "?"
}

// nativeCounters is the counters domain written in Go, to compare with
// the same job in Wasm.
type nativeCounters struct{}

func (n nativeCounters) Try(_ context.Context, j *plan.Job, c sdk.Call, _ plan.Reader) (plan.Result, error) {
	var cur, tgt float64
	if err := json.Unmarshal(c.Current, &cur); err != nil {
		return plan.Result{}, err
	}
	if err := json.Unmarshal(c.Target, &tgt); err != nil {
		return plan.Result{}, err
	}
	return plan.Result{OK: cur < tgt, Effect: cur + 1}, nil
}
