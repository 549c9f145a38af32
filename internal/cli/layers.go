package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/state"
)

const hintLayers = `give a JSON file with the layers, an array of {"name", "when", "target"} (docs/mqtt.md, "Layers")`

// readLayersArg reads --layers: a file, or an inline JSON array. It
// checks the layers as devices will.
func readLayersArg(arg string) (json.RawMessage, []layer.Layer, error) {
	if arg == "" {
		return nil, nil, nil
	}
	b := []byte(arg)
	if !strings.HasPrefix(strings.TrimSpace(arg), "[") {
		var err error
		if b, err = readFileArg("--layers", arg, hintLayers); err != nil {
			return nil, nil, err
		}
	}
	ls, err := layer.Parse(b, "")
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--layers %s: %w", arg, err)}
	}
	v, _ := state.Parse(b) // Parse accepted it
	return state.Canonical(v), ls, nil
}

// readFactsArg reads --facts: a JSON file (or inline object) of fact
// names to a value or a list of values, as a device knows them:
// {"board": "rpi4", "group": ["north", "pumps"], "site": "mill"}.
func readFactsArg(arg string) (layer.Facts, error) {
	if arg == "" {
		return layer.Facts{}, nil
	}
	b := []byte(arg)
	if !strings.HasPrefix(strings.TrimSpace(arg), "{") {
		var err error
		if b, err = readFileArg("--facts", arg, `give a JSON file of the device's facts, e.g. {"board": "rpi4", "group": ["north"]}`); err != nil {
			return nil, err
		}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, usageError{fmt.Errorf(`--facts %s: want a JSON object of fact names to a value or a list of values, e.g. {"board": "rpi4", "group": ["north"]}: %v`, arg, err)}
	}
	f := layer.Facts{}
	for k, v := range raw {
		var one string
		if json.Unmarshal(v, &one) == nil {
			f[k] = []string{one}
			continue
		}
		var many []string
		if err := json.Unmarshal(v, &many); err != nil {
			return nil, usageError{fmt.Errorf("--facts %s: fact %q: want a string or a list of strings, got %s", arg, k, v)}
		}
		f[k] = many
	}
	return f, nil
}

// parseAt reads --at: RFC 3339, or empty for now.
func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageError{fmt.Errorf("--at %q: want an RFC 3339 time with its offset, e.g. 2026-03-02T22:30:00+01:00 or 2026-03-02T21:30:00Z", s)}
	}
	return t, nil
}

// previewLayers evaluates ls at t with facts, writes which are active and
// why the others are not, and returns target with the active ones over it.
func previewLayers(w io.Writer, ls []layer.Layer, facts layer.Facts, t time.Time, target any) any {
	e := layer.Evaluate(ls, facts, t)
	fmt.Fprintf(w, "layers at %s:\n", t.Format(time.RFC3339))
	for _, id := range e.Active {
		fmt.Fprintf(w, "  active    %s\n", id)
	}
	for _, why := range e.Inactive {
		fmt.Fprintf(w, "  inactive  %s\n", why)
	}
	if len(ls) == 0 {
		fmt.Fprintln(w, "  none")
	}
	eff := e.Apply(target)
	fmt.Fprintf(w, "effective target: %s\n\n", state.Canonical(eff))
	return eff
}
