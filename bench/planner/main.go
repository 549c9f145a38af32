// Command planner is the planner benchmark: the problems of PROBLEMS.md
// given to tern (jobs in Wasm) and to Mahler 4.1.5 (jobs in JavaScript),
// interleaved problem by problem and repeated, one line per problem with
// each side's median, its spread and the speed-up.
//
//	bench/planner/run.sh               # or: make bench-planner [ROUNDS=n]
//	go run ./bench/planner -mahler=false -rounds 3 -problems supervisor
//
// A run is rounds of batches. In each round every problem gets one batch
// from each side, back to back (which side goes first alternates), so both
// sides of a ratio are measured under the same load: on a busy machine the
// load moves between minutes, and a run that measured all of one side,
// then all of the other, saw its ratios move by 13-29% from run to run.
// Mahler runs in one Node process kept for the whole run
// (mahler/bench.mjs), driven over its stdin and stdout, one JSON line per
// batch; the two sides never run at the same time.
//
// A batch, the same on both sides: warm-up runs for -warm (at least one;
// -warm-first in a problem's first batch, for V8 to have compiled
// Mahler's code at its top tier), then timed runs until there are
// -min-runs of them and -min-time has passed (at most 1000); its value is
// their median. A problem with a run slower than 10 s gets a single timed
// run per batch, and no warm-up after its first. Only the search is timed: building the problem and loading the
// modules (tern), building the domain and the planner (Mahler) happen once,
// before a problem's first batch. Every tern run is a whole search: no
// answer is remembered from an earlier run (within a run the planner
// remembers answers, see runtime/plan).
//
// Per problem the table gives each side's median over the rounds and the
// range of its round values, the ratio of the medians, and the range of
// the ratios of each round. Both sides must find plans of the number of
// actions PROBLEMS.md gives, or the run fails. A last line measures what
// one call across the sandbox boundary costs, against the same job in
// native Go. tern runs with GOMAXPROCS=1 (run.sh sets it), as on a small
// board and as Node runs Mahler's search.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tern-iot/tern/internal/wasmbuild"
	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/sdk/abi"
)

type problem struct {
	name    string
	module  string // import path of the job module
	current any
	target  any
	actions int
	// unreached: part of the target cannot be reached. The partial
	// planner's plan has actions and leaves out this many places; the
	// all-or-nothing planner and Mahler find no plan (0 actions).
	unreached int
}

// wholeActions is the number of actions of an all-or-nothing plan.
func (p problem) wholeActions() int {
	if p.unreached > 0 {
		return 0
	}
	return p.actions
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

// services is an app's five services, s1..s5, on images
// <app>-s<i>:<version>, all with status.
func services(app string, version int, status string) map[string]any {
	m := map[string]any{}
	for i := 1; i <= 5; i++ {
		m[fmt.Sprintf("s%d", i)] = map[string]any{"image": fmt.Sprintf("%s-s%d:%d", app, i, version), "status": status}
	}
	return m
}

// supervisor is PROBLEMS.md's supervisor problem: apps old and move
// running, then three new apps, two of move's services on new images, and
// old removed.
func supervisor() (current, target map[string]any) {
	images := map[string]any{}
	apps := map[string]any{}
	for _, app := range []string{"old", "move"} {
		svcs := services(app, 1, "running")
		for _, s := range svcs {
			images[s.(map[string]any)["image"].(string)] = map[string]any{}
		}
		apps[app] = map[string]any{"services": svcs}
	}
	move := services("move", 1, "running")
	move["s1"].(map[string]any)["image"] = "move-s1:2"
	move["s2"].(map[string]any)["image"] = "move-s2:2"
	want := map[string]any{"move": map[string]any{"services": move}, "old": nil}
	for _, app := range []string{"new1", "new2", "new3"} {
		want[app] = map[string]any{"services": services(app, 1, "running")}
	}
	return map[string]any{"images": images, "apps": apps}, map[string]any{"apps": want}
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
	cur, tgt := supervisor()
	ps = append(ps, problem{
		name: "supervisor", module: mod + "supervisor",
		current: cur, target: tgt, actions: 3*(1+5*3) + 2*5 + 5 + 5 + 1,
	})
	// stuck-4: counters-4 and a fifth counter that would have to count down.
	cur, tgt = counters(4, 0), counters(4, 2)
	cur["counters"].(map[string]any)["c0004"], tgt["counters"].(map[string]any)["c0004"] = 5.0, 1.0
	ps = append(ps, problem{
		name: "stuck-4", module: mod + "counters",
		current: cur, target: tgt, actions: 8, unreached: 1,
	})
	return ps
}

// policy is how a batch is measured, on both sides (see the package
// documentation). Its JSON is the request bench.mjs reads.
type policy struct {
	Problem string  `json:"problem"`
	WarmMS  float64 `json:"warm_ms"`
	// FirstWarmMS replaces WarmMS in a problem's first batch.
	FirstWarmMS float64 `json:"first_warm_ms"`
	MinRuns     int     `json:"min_runs"`
	MinMS       float64 `json:"min_ms"`
	MaxRuns     int     `json:"max_runs"`
	SlowMS      float64 `json:"slow_ms"`
}

// batch is what one side measured of one problem in one round.
type batch struct {
	Problem    string    `json:"problem"`
	MS         []float64 `json:"ms"` // each timed run
	Warm       int       `json:"warm"`
	Actions    int       `json:"actions"`
	Iterations int       `json:"iterations"` // Mahler's count of tasks tried
	Error      string    `json:"error"`
	calls      int       // tern's calls into the sandbox per search
}

func (b batch) median() float64 { return median(b.MS) }

// result is one problem over the rounds.
type result struct {
	p          problem
	tern       []float64 // round medians, ms
	partial    []float64 // tern with partial plans (plan.Options.Partial)
	pratios    []float64 // per round, partial/tern
	mahler     []float64
	ratios     []float64 // per round, mahler/tern
	calls      int
	mahlerFail string // Mahler could not plan it: not asked again
	last       string // what the last round measured
}

// round measures r's problem once on each side, back to back, Mahler
// first if mahlerFirst; mahler nil leaves it out. With partial, tern
// plans it twice, all or nothing (as before issue 18) and with partial
// plans, one right after the other, in an order that alternates with
// mahlerFirst too.
func (r *result) round(ctx context.Context, ts *ternSide, mahler *mahlerProc, pol policy, mahlerFirst, partial bool) error {
	pol.Problem = r.p.name
	var tb, pb, mb batch
	sides := []func() error{
		func() (err error) {
			if partial && mahlerFirst {
				if pb, err = ts.batch(ctx, r.p, pol, true); err != nil {
					return err
				}
			}
			if tb, err = ts.batch(ctx, r.p, pol, false); err != nil || !partial || mahlerFirst {
				return err
			}
			pb, err = ts.batch(ctx, r.p, pol, true)
			return err
		},
		func() (err error) {
			if mahler != nil && r.mahlerFail == "" {
				mb, err = mahler.batch(pol)
			}
			return err
		},
	}
	if mahlerFirst {
		sides[0], sides[1] = sides[1], sides[0]
	}
	for _, side := range sides {
		if err := side(); err != nil {
			return err
		}
	}
	r.tern = append(r.tern, tb.median())
	r.calls = tb.calls
	r.last = fmt.Sprintf("%-14s tern %.3f ms (%d runs)", r.p.name, tb.median(), len(tb.MS))
	if partial {
		r.partial = append(r.partial, pb.median())
		r.pratios = append(r.pratios, pb.median()/tb.median())
		r.last += fmt.Sprintf(", partial %.3f ms (%d runs)", pb.median(), len(pb.MS))
	}
	switch {
	case mahler == nil || r.mahlerFail != "":
	case mb.Error != "":
		r.mahlerFail = mb.Error
		r.last += ", mahler failed: " + mb.Error
	case mb.Actions != tb.Actions:
		return fmt.Errorf("Mahler's plan has %d actions, tern's %d: not the same problem", mb.Actions, tb.Actions)
	default:
		r.mahler = append(r.mahler, mb.median())
		r.ratios = append(r.ratios, mb.median()/tb.median())
		r.last += fmt.Sprintf(", mahler %.3f ms (%d runs)", mb.median(), len(mb.MS))
	}
	return nil
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds; each measures every problem on both sides, interleaved")
	only := flag.String("problems", "", "comma-separated problem names; empty: all")
	withMahler := flag.Bool("mahler", true, "also run Mahler (needs node and bench/planner/mahler/node_modules: run.sh installs them)")
	warm := flag.Duration("warm", 500*time.Millisecond, "warm-up of each batch (at least one run)")
	warmFirst := flag.Duration("warm-first", 2*time.Second, "warm-up of a problem's first batch, instead of -warm")
	minRuns := flag.Int("min-runs", 3, "timed runs of each batch, at least")
	minTime := flag.Duration("min-time", 500*time.Millisecond, "timed runs of each batch last this long, at least")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (the tern side) to this file")
	withPartial := flag.Bool("partial", true, "also plan each problem with partial plans (plan.Options.Partial), beside all or nothing")
	flag.Parse()
	if *rounds < 1 || *minRuns < 1 {
		fail("-rounds and -min-runs must be at least 1")
	}
	ctx := context.Background()

	var ps []problem
	for _, p := range problems() {
		if *only == "" || slices.Contains(strings.Split(*only, ","), p.name) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		fail("no problem named in -problems %q", *only)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("%v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	var mahler *mahlerProc
	if *withMahler {
		var err error
		if mahler, err = startMahler(filepath.Join("bench", "planner", "mahler")); err != nil {
			fail("mahler: %v", err)
		}
		defer mahler.close()
		for _, p := range ps {
			if !slices.Contains(mahler.Problems, p.name) {
				fail("mahler: bench.mjs has no problem %s", p.name)
			}
		}
	}
	ts := newTernSide()
	defer ts.close(ctx)

	loadBefore := loadavg()
	results := make([]*result, len(ps))
	for i, p := range ps {
		results[i] = &result{p: p}
	}
	pol := policy{WarmMS: ms(*warm), FirstWarmMS: ms(*warmFirst), MinRuns: *minRuns, MinMS: ms(*minTime), MaxRuns: 1000, SlowMS: 10_000}
	for r := range *rounds {
		for i, res := range results {
			// Which side goes first alternates, by round and by problem.
			if err := res.round(ctx, ts, mahler, pol, (r+i)%2 == 1, *withPartial); err != nil {
				fail("%s: %v", res.p.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d/%d %s\n", r+1, *rounds, res.last)
		}
	}

	fmt.Printf("planner benchmark: tern (jobs in Wasm, wazero %s, %s/%s, GOMAXPROCS=%d)", wazeroVersion(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if mahler != nil {
		fmt.Printf(" vs Mahler %s (node %s, methods expanded %s)", mahler.Mahler, mahler.Node, mahler.Expansion)
	}
	fmt.Printf("\n%d rounds, interleaved; %d CPUs", *rounds, runtime.NumCPU())
	if loadBefore != "" {
		fmt.Printf(", load average %s before, %s after", loadBefore, loadavg())
	}
	fmt.Printf("\nms: median of the rounds (each round's value is the median of its timed runs), min-max of the rounds\n")
	report(os.Stdout, results, *withPartial, mahler != nil)

	wasmUS, nativeUS, err := boundary(ctx)
	if err != nil {
		fail("boundary: %v", err)
	}
	fmt.Printf("boundary: one tern_try call into the sandbox %.2fus, the same job native %.3fus (counters plus_one)\n", wasmUS, nativeUS)
}

// report prints the table.
func report(out io.Writer, results []*result, withPartial, withMahler bool) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	width := len("problem")
	for _, r := range results {
		width = max(width, len(r.p.name))
	}
	head := fmt.Sprintf("%-*s\tactions\tcalls\ttern ms\tmin-max\t", width, "problem")
	if withPartial {
		head += "partial ms\tmin-max\tpartial/tern\t"
	}
	if withMahler {
		head += "mahler ms\tmin-max\tspeed-up\tby round\t"
	}
	fmt.Fprintln(w, head)
	for _, r := range results {
		actions := fmt.Sprint(r.p.actions)
		if r.p.unreached > 0 { // no plan all or nothing; a partial one
			actions = fmt.Sprintf("0|%d", r.p.actions)
		}
		line := fmt.Sprintf("%-*s\t%s\t%d\t%s\t%s\t", width, r.p.name, actions, r.calls, num(median(r.tern)), spread(r.tern))
		if withPartial {
			line += fmt.Sprintf("%s\t%s\t%.2fx\t", num(median(r.partial)), spread(r.partial), median(r.pratios))
		}
		switch {
		case !withMahler:
		case r.mahlerFail != "":
			line += fmt.Sprintf("failed\t\t\t\t(%s)", r.mahlerFail)
		default:
			line += fmt.Sprintf("%s\t%s\t%.1fx\t%s\t", num(median(r.mahler)), spread(r.mahler), median(r.mahler)/median(r.tern), spread(r.ratios))
		}
		fmt.Fprintln(w, line)
	}
	w.Flush()
}

// num prints a time in ms with three significant digits or more.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func spread(xs []float64) string {
	if len(xs) == 0 {
		return ""
	}
	return num(slices.Min(xs)) + "-" + num(slices.Max(xs))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// loadavg is the system's load averages (1, 5, 15 minutes), or "" where
// /proc/loadavg is not there.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/planner: "+format+"\n", args...)
	os.Exit(1)
}

// ternSide plans with the problems' modules in Wasm.
type ternSide struct {
	planners map[string]*tern.Planner // by problem, loaded at its first batch
	slow     map[string]bool          // problems with a run slower than SlowMS
}

func newTernSide() *ternSide {
	return &ternSide{planners: map[string]*tern.Planner{}, slow: map[string]bool{}}
}

func (t *ternSide) close(ctx context.Context) {
	for _, pl := range t.planners {
		pl.Close(ctx)
	}
}

// planner is p's planner, with its module loaded at the first call.
func (t *ternSide) planner(ctx context.Context, p problem) (*tern.Planner, error) {
	if pl, ok := t.planners[p.name]; ok {
		return pl, nil
	}
	wasm, err := wasmbuild.Cached(p.module)
	if err != nil {
		return nil, err
	}
	pl, err := tern.NewPlanner(ctx, tern.PlannerOptions{Modules: []tern.ModuleSpec{{Wasm: wasm}}, CacheDir: cacheDir()})
	if err != nil {
		return nil, err
	}
	t.planners[p.name] = pl
	return pl, nil
}

// batch measures p as the policy says, with partial plans if partial.
// A problem with unreached parts fails all or nothing: the batch then
// times how long the planner takes to say so.
func (t *ternSide) batch(ctx context.Context, p problem, pol policy, partial bool) (batch, error) {
	warm := pol.WarmMS
	if _, ok := t.planners[p.name]; !ok {
		warm = pol.FirstWarmMS
	}
	pl, err := t.planner(ctx, p)
	if err != nil {
		return batch{}, err
	}
	opts := plan.Options{Limits: plan.Limits{Time: 5 * time.Minute}, Partial: partial}
	want, unreached := p.wholeActions(), 0
	if partial {
		want, unreached = p.actions, p.unreached
	}
	var last *plan.Plan
	run := func() (float64, error) {
		start := time.Now()
		var err error
		last, err = pl.Find(ctx, p.current, p.target, opts)
		d := ms(time.Since(start))
		if d > pol.SlowMS {
			t.slow[p.name] = true
		}
		var none *plan.NoPlanError
		switch {
		case want == 0 && errors.As(err, &none) && none.Bound == "":
			last, err = &plan.Plan{}, nil // no plan, as expected
		case err == nil && len(last.Tasks) != want:
			err = fmt.Errorf("tern's plan has %d actions, PROBLEMS.md says %d:\n%s", len(last.Tasks), want, plan.Text(last))
		case err == nil && len(last.Unreached) != unreached:
			err = fmt.Errorf("tern's plan leaves out %d places, PROBLEMS.md says %d: %v", len(last.Unreached), unreached, last.UnreachedError())
		}
		return d, err
	}
	b := batch{Problem: p.name}
	if !t.slow[p.name] {
		start := time.Now()
		for b.Warm == 0 || ms(time.Since(start)) < warm && !t.slow[p.name] {
			if _, err := run(); err != nil {
				return b, err
			}
			b.Warm++
		}
	}
	start := time.Now()
	for {
		if t.slow[p.name] {
			if len(b.MS) >= 1 {
				break
			}
		} else if len(b.MS) >= pol.MaxRuns || len(b.MS) >= pol.MinRuns && ms(time.Since(start)) >= pol.MinMS {
			break
		}
		d, err := run()
		if err != nil {
			return b, err
		}
		b.MS = append(b.MS, d)
	}
	b.Actions, b.calls = len(last.Tasks), last.Stats.Calls
	return b, nil
}

// mahlerProc is the Node process that runs Mahler's side
// (mahler/bench.mjs), kept for the whole run.
type mahlerProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
	// From its first line:
	Mahler    string   `json:"mahler"`
	Node      string   `json:"node"`
	Problems  []string `json:"problems"`
	Expansion string   `json:"expansion"`
}

// startMahler starts bench.mjs in dir. Methods are expanded sequentially,
// the faster of Mahler's documented modes for these problems.
func startMahler(dir string) (*mahlerProc, error) {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mahler")); err != nil {
		return nil, fmt.Errorf("mahler is not installed: run bench/planner/run.sh (it runs npm ci in %s)", dir)
	}
	cmd := exec.Command("node", "bench.mjs", "--expansion", "sequential")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("node bench.mjs: %w", err)
	}
	m := &mahlerProc{cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}
	if err := m.out.Decode(m); err != nil {
		m.close()
		return nil, fmt.Errorf("node bench.mjs: reading its first line: %w", err)
	}
	return m, nil
}

// batch asks for one batch. A batch Mahler could not finish (its search
// took too long) is a result with Error set; err is for a broken process.
func (m *mahlerProc) batch(pol policy) (batch, error) {
	req, err := json.Marshal(pol)
	if err != nil {
		return batch{}, err
	}
	if _, err := m.in.Write(append(req, '\n')); err != nil {
		return batch{}, fmt.Errorf("node bench.mjs: %w", err)
	}
	var b batch
	if err := m.out.Decode(&b); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("it exited")
		}
		return b, fmt.Errorf("node bench.mjs: %w", err)
	}
	if b.Problem != pol.Problem {
		return b, fmt.Errorf("node bench.mjs answered for %q (%s), not %q", b.Problem, b.Error, pol.Problem)
	}
	if b.Error == "" && len(b.MS) == 0 {
		return b, fmt.Errorf("node bench.mjs: no timed run of %s", pol.Problem)
	}
	return b, nil
}

// close ends the process: it exits when its stdin closes.
func (m *mahlerProc) close() error {
	m.in.Close()
	return m.cmd.Wait()
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
	c := abi.Call{Job: j.Spec.Name, Path: "/counters/c0000", Params: map[string]string{"name": "c0000"}, Current: json.RawMessage("1"), Target: json.RawMessage("2")}
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

func cacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "tern", "bench-wazero")
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

func (n nativeCounters) Try(_ context.Context, j *plan.Job, c abi.Call, _ plan.Reader) (plan.Result, error) {
	var cur, tgt float64
	if err := json.Unmarshal(c.Current, &cur); err != nil {
		return plan.Result{}, err
	}
	if err := json.Unmarshal(c.Target, &tgt); err != nil {
		return plan.Result{}, err
	}
	return plan.Result{OK: cur < tgt, Effect: cur + 1}, nil
}
