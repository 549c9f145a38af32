package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	goruntime "runtime"
	"slices"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/layer"
)

// A device's conditional target layers are those of every scope it
// combines, in the scopes' precedence order: its groups' layers as the
// groups are listed, then its own (fleet.Scopes). A later layer lies
// over an earlier one, so a device's layer has the last word over a
// group's, as its target does.

// layers returns the layers of the sources held, in scope order, each
// named by its scope. A source's layers were checked when its envelope
// was parsed; one that no longer parses (a store written by hand) is left
// out with an error that says which, and the others apply.
func (c *combiner) layers() ([]layer.Layer, error) {
	var out []layer.Layer
	var bad error
	for _, scope := range c.order {
		ls, err := layer.Parse(c.sources[scope].Layers, scope)
		if err != nil {
			bad = fmt.Errorf("ternd: the layers stored for %s do not parse (%w); they are left out: push the target again", scope, err)
			continue
		}
		out = append(out, ls...)
	}
	return out, bad
}

// sameEnvelope reports whether st is the envelope held (a redelivery):
// the same target and the same layers.
func sameEnvelope(st fleet.ScopedTarget, held source) bool {
	return sameDocument(st.Target, held.Target) && sameLayers(st.Layers, held.Layers)
}

func sameLayers(a, b []byte) bool {
	empty := func(x []byte) bool { return len(x) == 0 || string(x) == "null" || string(x) == "[]" }
	if empty(a) || empty(b) {
		return empty(a) == empty(b)
	}
	return sameDocument(a, b)
}

// facts are what the device knows about itself for layers to match:
// its id, board, architecture and groups, and ternd.yaml's facts.
func (c Config) facts(board string) layer.Facts {
	f := layer.Facts{
		layer.FactDevice: {c.Device},
		layer.FactBoard:  {board},
		layer.FactArch:   {goruntime.GOARCH},
		layer.FactGroup:  slices.Clone(c.Groups),
	}
	for k, v := range c.Facts {
		f[k] = []string{v}
	}
	return f
}

// validateFacts checks ternd.yaml's facts: good names and values, and
// none that would shadow a fact ternd knows.
func validateFacts(facts map[string]string) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(facts)) {
		switch k {
		case layer.FactDevice, layer.FactBoard, layer.FactArch, layer.FactGroup:
			errs = append(errs, fmt.Errorf("facts: %q is a fact ternd knows already (from device, board, its architecture, groups); set it there, or name this fact otherwise", k))
			continue
		}
		if err := layer.CheckFact(k, facts[k]); err != nil {
			errs = append(errs, fmt.Errorf("facts: %w", err))
		}
	}
	return errs
}

// agentLayers is layers for the agent: a bad source's layers are logged
// and left out.
func (c *combiner) agentLayers(log *slog.Logger) []layer.Layer {
	ls, err := c.layers()
	if err != nil {
		log.Error("target layers left out", "err", err)
	}
	return ls
}
