package fleet

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/state"
)

// Scope names where a target is published, and is part of what its
// signature covers, so a target signed for one device (or group) cannot be
// replayed onto another's topic: "device/<id>" or "group/<name>".
func DeviceScope(id string) string { return "device/" + id }

// GroupScope is the scope of a group's target.
func GroupScope(group string) string { return "group/" + group }

// signedBytes is what a target's signature covers: a fixed header, the
// scope, the version and the target in canonical JSON (keys sorted), so any
// change to any of them breaks the signature.
func (env TargetEnvelope) signedBytes(scope string) ([]byte, error) {
	v, err := state.Parse(env.Target)
	if err != nil {
		return nil, err
	}
	b := []byte("tern target 1\n" + scope + "\n" + strconv.FormatUint(env.Version, 10) + "\n")
	return append(b, state.Canonical(v)...), nil
}

// Sign signs the envelope for scope with the operator's key.
func (env *TargetEnvelope) Sign(scope string, priv ed25519.PrivateKey) error {
	msg, err := env.signedBytes(scope)
	if err != nil {
		return fmt.Errorf("fleet: signing a target: %w", err)
	}
	env.Key = signing.KeyID(priv.Public().(ed25519.PublicKey))
	env.Sig = ed25519.Sign(priv, msg)
	return nil
}

// Verify checks the envelope's signature for scope against the device's
// trust store. Errors wrap signing.ErrUnsigned, ErrUnknownKey or ErrBadSig
// and say what to do.
func (env TargetEnvelope) Verify(scope string, trust signing.Trust) error {
	if env.Key == "" || len(env.Sig) == 0 {
		return fmt.Errorf("%w: this device accepts only targets signed by a trusted operator key: push with tern push --key", signing.ErrUnsigned)
	}
	msg, err := env.signedBytes(scope)
	if err != nil {
		return err
	}
	if err := trust.Verify(env.Key, msg, env.Sig); err != nil {
		if errors.Is(err, signing.ErrBadSig) {
			return fmt.Errorf("%w (for %s, version %d)", err, scope, env.Version)
		}
		return err
	}
	return nil
}
