package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/sdk/abi"
)

// Planner plans offline with the same modules and the same search a device
// uses, without hardware and without a store: `tern plan` previews what a
// device would do, and the planner benchmark measures the search.
type Planner struct {
	set *modset
	ev  evaluator
}

// PlannerOptions configure a Planner.
type PlannerOptions struct {
	Modules  []ModuleSpec // each with its Wasm
	CacheDir string       // compilation cache; empty: none
	Logger   *slog.Logger // nil: discard
	// ConfigByName gives modules their device configuration by module
	// name, for modules whose ModuleSpec has none.
	ConfigByName map[string]json.RawMessage
}

// NewPlanner loads the modules. Close it when done.
func NewPlanner(ctx context.Context, opts PlannerOptions) (*Planner, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	host, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: opts.CacheDir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	p := &Planner{set: &modset{host: host, log: opts.Logger}}
	for _, spec := range opts.Modules {
		config := spec.Config
		var probe interface{ Close(context.Context) error }
		if config == nil && spec.Name != "" {
			config = opts.ConfigByName[spec.Name]
		}
		if config == nil && len(opts.ConfigByName) > 0 {
			// The name is in the manifest: read it, then load configured.
			m, err := host.Load(ctx, spec.Wasm, spec.Grants, nil)
			if err != nil {
				host.Close(ctx)
				return nil, fmt.Errorf("runtime: module %s: %w", spec.Name, err)
			}
			config = opts.ConfigByName[m.Manifest().Name]
			// Closed after the configured load, which then reuses its
			// compiled code instead of compiling the module again.
			probe = m
		}
		spec.Config = config
		_, err := p.set.add(ctx, spec, spec.Wasm, "")
		if probe != nil {
			probe.Close(ctx)
		}
		if err != nil {
			host.Close(ctx)
			return nil, err
		}
	}
	p.ev = evaluator{mods: p.set.module}
	return p, nil
}

// Jobs lists the jobs the modules offer.
func (p *Planner) Jobs() []*plan.Job { return p.set.jobs }

// Evaluator answers planning questions through the modules.
func (p *Planner) Evaluator() plan.Evaluator { return p.ev }

// Find searches for a plan from current to target.
func (p *Planner) Find(ctx context.Context, current, target any, opts plan.Options) (*plan.Plan, error) {
	if opts.MayExpand == nil {
		opts.MayExpand = p.set.mayExpand
	}
	return plan.Find(wasmhost.WithPlanTime(ctx, time.Now()), p.set.jobs, p.ev, current, target, opts)
}

// Close releases the modules.
func (p *Planner) Close(ctx context.Context) error { return p.set.host.Close(ctx) }

// Describe loads a module in a throwaway sandbox (no hardware) and returns
// what it says of itself: `tern module build` embeds it as the manifest
// section.
func Describe(ctx context.Context, wasm []byte) (abi.Manifest, error) {
	host, err := wasmhost.New(ctx, wasmhost.Options{})
	if err != nil {
		return abi.Manifest{}, err
	}
	defer host.Close(ctx)
	m, err := host.Load(ctx, wasm, Grants{}, nil)
	if err != nil {
		return abi.Manifest{}, err
	}
	return m.Manifest(), nil
}
