package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	tern "github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/state"
)

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// planCmd previews offline what a device would do: the same modules and
// the same planner as ternd, with no hardware and no broker.
func planCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	var modules, configs repeated
	fs.Var(&modules, "module", "a job module (.wasm); repeat for several")
	fs.Var(&configs, "config", "a module's device configuration, NAME=JSON or NAME=@FILE; repeat for several")
	statePath := fs.String("state", "{}", "the device's current state: a file, - for stdin, or inline JSON")
	targetPath := fs.String("target", "", "the target: a file, - for stdin, or inline JSON (required)")
	strict := fs.Bool("strict", false, "also remove what the target does not name, where a job can")
	allOrNothing := fs.Bool("all-or-nothing", false, "plan the whole target or nothing, as a device with all_or_nothing: true; by default a plan reaches what it can and names what it cannot")
	format := fs.String("format", "text", "output: text, mermaid, dot or json")
	layersArg := fs.String("layers", "", "the target's conditional layers: a JSON file, or an inline array (docs/mqtt.md, Layers)")
	at := fs.String("at", "", "evaluate the layers at this `TIME` (RFC 3339, e.g. 2026-03-02T22:30:00+01:00); default now")
	factsArg := fs.String("facts", "", `the device's facts for the layers: a JSON FILE or inline object, e.g. {"board": "rpi4", "group": ["north"]}`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *targetPath == "" || len(modules) == 0 || fs.NArg() != 0 {
		fs.Usage()
		return usageError{errors.New("plan needs --target and at least one --module")}
	}
	render, ok := map[string]func(*plan.Plan) string{"text": plan.Text, "mermaid": plan.Mermaid, "dot": plan.DOT, "json": planJSON}[*format]
	if !ok {
		return usageError{fmt.Errorf("--format %q: want text, mermaid, dot or json", *format)}
	}
	if *statePath == "-" && *targetPath == "-" {
		return usageError{errors.New("only one of --state and --target can read stdin")}
	}
	_, current, err := readDocArg("--state", *statePath)
	if err != nil {
		return err
	}
	_, target, err := readDocArg("--target", *targetPath)
	if err != nil {
		return err
	}
	if *layersArg != "" || *at != "" || *factsArg != "" {
		_, ls, err := readLayersArg(*layersArg)
		if err != nil {
			return err
		}
		when, err := parseAt(*at)
		if err != nil {
			return err
		}
		facts, err := readFactsArg(*factsArg)
		if err != nil {
			return err
		}
		out := stdout
		if *format != "text" {
			out = stderr // the plan alone on stdout, for the tools that read it
		}
		target = previewLayers(out, ls, facts, when, target)
	}
	cfg := map[string]json.RawMessage{}
	for _, c := range configs {
		name, val, ok := strings.Cut(c, "=")
		if !ok || name == "" {
			return usageError{fmt.Errorf("--config %q: want NAME=JSON or NAME=@FILE", c)}
		}
		if file, isFile := strings.CutPrefix(val, "@"); isFile {
			b, err := readFileArg("--config "+name+": file", file, "give a JSON file with the module's configuration")
			if err != nil {
				return err
			}
			val = string(b)
		}
		if !json.Valid([]byte(val)) {
			return usageError{fmt.Errorf("--config %s: not valid JSON", name)}
		}
		cfg[name] = json.RawMessage(val)
	}
	var specs []tern.ModuleSpec
	for _, path := range modules {
		wasm, err := readFileArg("--module", path, hintModule)
		if err != nil {
			return err
		}
		specs = append(specs, tern.ModuleSpec{Wasm: wasm})
	}
	pl, err := tern.NewPlanner(ctx, tern.PlannerOptions{Modules: specs, ConfigByName: cfg, CacheDir: planCache()})
	if err != nil {
		return err
	}
	defer pl.Close(ctx)
	loaded := map[string]bool{}
	for _, j := range pl.Jobs() {
		loaded[j.Module] = true
	}
	for name := range cfg {
		if !loaded[name] {
			return usageError{fmt.Errorf("--config %s: no module of that name was given", name)}
		}
	}
	p, err := pl.Find(ctx, current, target, plan.Options{Strict: *strict, Partial: !*allOrNothing})
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, render(p))
	// A partial plan is printed, and what it leaves out, and why, is the
	// error: exit 1, as a device that runs it does not converge.
	return p.UnreachedError()
}

// planJSON renders a plan for scripts.
func planJSON(p *plan.Plan) string {
	type task struct {
		ID     int             `json:"id"`
		Job    string          `json:"job"`
		Op     string          `json:"op"`
		Path   string          `json:"path"`
		Target json.RawMessage `json:"target,omitempty"`
		Effect json.RawMessage `json:"effect"`
		Via    []string        `json:"via,omitempty"`
		Reads  []string        `json:"reads,omitempty"`
		Deps   []int           `json:"deps"`
	}
	// stats is plan.Stats for scripts: snake_case keys, the time in
	// milliseconds (a Go Duration would print as nanoseconds).
	type stats struct {
		Calls      int     `json:"calls"`
		Tries      int     `json:"tries"`
		Backtracks int     `json:"backtracks"`
		States     int     `json:"states"`
		ElapsedMS  float64 `json:"elapsed_ms"`
	}
	// unreached is a plan.Stuck: a part of the target a partial plan
	// leaves out, and why.
	type attempt struct {
		Job string `json:"job"`
		Why string `json:"why"`
	}
	type unreached struct {
		Path    string          `json:"path"`
		Current json.RawMessage `json:"current,omitempty"`
		Target  json.RawMessage `json:"target"`
		At      string          `json:"at,omitempty"`
		Tried   []attempt       `json:"tried,omitempty"`
	}
	out := struct {
		Tasks     []task      `json:"tasks"`
		Stats     stats       `json:"stats"`
		Unreached []unreached `json:"unreached,omitempty"`
	}{Tasks: []task{}, Stats: stats{Calls: p.Stats.Calls, Tries: p.Stats.Tries, Backtracks: p.Stats.Backtracks, States: p.Stats.States,
		ElapsedMS: float64(p.Stats.Duration.Microseconds()) / 1000}}
	for _, t := range p.Tasks {
		var reads []string
		for _, r := range t.Reads {
			reads = append(reads, r.String())
		}
		out.Tasks = append(out.Tasks, task{ID: t.ID, Job: t.Job.Name(), Op: string(t.Op), Path: t.Path.String(),
			Target: t.Target, Effect: state.Canonical(t.Effect), Via: t.Via, Reads: reads, Deps: append([]int{}, t.Deps...)})
	}
	for _, st := range p.Unreached {
		u := unreached{Path: st.Path, Target: json.RawMessage(st.Target), At: st.At}
		if st.Current != "" {
			u.Current = json.RawMessage(st.Current)
		}
		for _, a := range st.Tried {
			u.Tried = append(u.Tried, attempt(a))
		}
		out.Unreached = append(out.Unreached, u)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	return string(b) + "\n"
}

// planCache is where tern plan keeps compiled modules, as ternd keeps
// them: the user's cache directory (XDG_CACHE_HOME, else ~/.cache), under
// tern/modules. Compiling a Go module takes seconds (a minute under the race
// detector on a busy machine), every time without it. Empty, no cache,
// where that directory cannot be made.
func planCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "tern", "modules")
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	return dir
}
