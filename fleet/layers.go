package fleet

import (
	"bytes"
	"encoding/json"

	"github.com/tern-iot/tern/runtime/layer"
	"github.com/tern-iot/tern/runtime/state"
)

// LayersFormat is the format of a target envelope that carries "layers"
// (conditional target layers, package runtime/layer). An envelope without
// layers stays at Format, so every device reads it; one with layers is
// format 4, so that a device whose ternd predates layers refuses it
// ("upgrade ternd on the device") instead of ignoring the layers and
// pursuing a target the operator did not mean for it at that hour or on
// that board (see RATIONALE.md, "Layers are a new format"). It is 4, not
// 3, because 3 is a release manifest's (ChunkedFormat): a format number
// names one form, whatever the kind.
const LayersFormat = 4

// SetLayers puts layers (a JSON array, see runtime/layer) in the envelope
// and sets its format to match: LayersFormat with layers, Format without.
// Call it before Sign: the signature covers the layers.
func (env *TargetEnvelope) SetLayers(layers json.RawMessage) {
	if hasLayers(layers) {
		env.Layers, env.Format = layers, LayersFormat
		return
	}
	env.Layers = nil
	if env.Format == 0 || env.Format == LayersFormat {
		env.Format = Format
	}
}

// ParseLayers returns the envelope's layers, each with scope set. The
// envelope was checked by ParseTargetEnvelope, so errors come only from
// envelopes made by hand.
func (env TargetEnvelope) ParseLayers(scope string) ([]layer.Layer, error) {
	return layer.Parse(env.Layers, scope)
}

func hasLayers(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && string(b) != "null" && string(b) != "[]"
}

// checkLayers is ParseTargetEnvelope's check of "layers" and of the
// format that goes with them.
func checkLayers(env TargetEnvelope) error {
	const what = "target envelope"
	has := hasLayers(env.Layers)
	if has && env.Format != LayersFormat {
		return newError(ErrMalformed, nil,
			`fleet: %s version %d has "layers" but "format": %d; an envelope with layers is format %d, so that devices too old to evaluate layers refuse it instead of ignoring them (tern push --layers does this)`,
			what, env.Version, env.Format, LayersFormat)
	}
	if _, err := layer.Parse(env.Layers, ""); err != nil {
		return newError(ErrMalformed, err, `fleet: %s version %d: "layers": %v`, what, env.Version, err)
	}
	return nil
}

// signedLayers is the line a target's signature adds for its layers, ""
// when it has none (so envelopes without layers keep their signed bytes):
// "layers " and the layers in canonical JSON.
func signedLayers(env TargetEnvelope) (string, error) {
	if !hasLayers(env.Layers) {
		return "", nil
	}
	v, err := state.Parse(env.Layers)
	if err != nil {
		return "", err
	}
	return "layers " + string(state.Canonical(v)), nil
}
