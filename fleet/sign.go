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
	env.Key, env.Sig = sign(priv, msg)
	return nil
}

// Verify checks the envelope's signature for scope against the device's
// trust store. Errors wrap signing.ErrUnsigned, ErrUnknownKey or ErrBadSig
// and say what to do.
func (env TargetEnvelope) Verify(scope string, trust signing.Trust) error {
	msg, err := env.signedBytes(scope)
	if err != nil {
		return err
	}
	return verify(trust, env.Key, env.Sig, msg,
		"targets", "push with tern push --key", fmt.Sprintf("for %s, version %d", scope, env.Version))
}

// sign is the one signing code path of every envelope: the key's id and
// the ed25519 signature of msg, the envelope's signed bytes.
func sign(priv ed25519.PrivateKey, msg []byte) (key string, sig []byte) {
	return signing.KeyID(priv.Public().(ed25519.PublicKey)), ed25519.Sign(priv, msg)
}

// verify is the one verifying code path of every envelope. what names the
// payloads in the message ("targets"), fix says how to sign one, and which
// says which envelope failed. Errors wrap signing.ErrUnsigned,
// ErrUnknownKey or ErrBadSig.
func verify(trust signing.Trust, key string, sig, msg []byte, what, fix, which string) error {
	if key == "" || len(sig) == 0 {
		return fmt.Errorf("%w: this device accepts only %s signed by a trusted operator key: %s", signing.ErrUnsigned, what, fix)
	}
	if err := trust.Verify(key, msg, sig); err != nil {
		if errors.Is(err, signing.ErrBadSig) {
			return fmt.Errorf("%w (%s)", err, which)
		}
		return err
	}
	return nil
}
