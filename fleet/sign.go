package fleet

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/state"
)

// Scope names where a target is published, and is part of what its
// signature covers, so a target signed for one device (or group) cannot be
// replayed onto another's topic: "device/<id>" or "group/<name>".
func DeviceScope(id string) string { return "device/" + id }

// GroupScope is the scope of a group's target.
func GroupScope(group string) string { return "group/" + group }

// signedBytes is what the signature of every envelope covers (targets,
// module releases and agent releases alike): one line each, each ended by
// "\n",
//
//	<kind> <Format>   "tern target 2", "tern release 2", "tern agent release 2"
//	<prefix>          the topic prefix of the fleet it is for, e.g. "tern"
//	<fleet>           the fleet's name
//	<scope>           device/<id>, group/<name>, module/<name> or agent/<arch>
//	<version>         in decimal
//	<own>...          what the kind adds (see each kind's signedBytes)
//
// so an envelope made for one fleet, topic prefix, device, group, module
// or architecture verifies for no other. Prefix, fleet and scope are names
// ([ValidID]: no line breaks) and the version a number, so no field can
// pass for another.
func signedBytes(kind, prefix, fleet, scope string, version uint64, own ...string) []byte {
	var b strings.Builder
	for _, line := range append([]string{kind + " " + strconv.Itoa(Format), prefix, fleet, scope, strconv.FormatUint(version, 10)}, own...) {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// signedBytes is what a target's signature covers: the common lines (see
// the function signedBytes) for scope, then the target in canonical JSON
// (keys sorted, no white space), so any change to any of them breaks the
// signature.
func (env TargetEnvelope) signedBytes(scope string) ([]byte, error) {
	v, err := state.Parse(env.Target)
	if err != nil {
		return nil, err
	}
	own := []string{string(state.Canonical(v))}
	if env.Replaces != 0 {
		// Only a rebase has the line, so envelopes without it keep the
		// signed bytes they always had.
		own = append(own, "replaces "+strconv.FormatUint(env.Replaces, 10))
	}
	own = append(own, rolloutLine(env.Rollout)...)
	return signedBytes("tern target", env.Prefix, env.Fleet, scope, env.Version, own...), nil
}

// SetTopics makes the envelope for the fleet and topic prefix of t. Call it
// before Sign: the signature covers them.
func (env *TargetEnvelope) SetTopics(t Topics) { env.Prefix, env.Fleet = t.prefix(), t.Fleet }

// CheckTopics reports whether the envelope is for the fleet and topic
// prefix of t; the error ([ErrWrongFleet]) says which fleet it was made for
// and how to make one for t.
func (env TargetEnvelope) CheckTopics(t Topics) error {
	return checkTopics(fmt.Sprintf("target envelope version %d", env.Version), env.Prefix, env.Fleet, t, "tern push (or tern sign)")
}

// Sign signs the envelope for scope with the operator's key. Set the
// fleet first (SetTopics): the signature covers it.
func (env *TargetEnvelope) Sign(scope string, priv ed25519.PrivateKey) error {
	if env.Fleet == "" || env.Prefix == "" {
		return errors.New("fleet: signing a target: it names no fleet or topic prefix, which the signature must cover; call SetTopics first")
	}
	msg, err := env.signedBytes(scope)
	if err != nil {
		return fmt.Errorf("fleet: signing a target: %w", err)
	}
	env.SignedScope = scope
	env.Key, env.Sig = sign(priv, msg)
	return nil
}

// Verify checks the envelope's signature for scope against the device's
// trust store. Errors wrap signing.ErrUnsigned, ErrUnknownKey or ErrBadSig
// and say what to do. The signature covers the envelope's Prefix and Fleet:
// check that they are the device's with CheckTopics (Device does).
func (env TargetEnvelope) Verify(scope string, trust signing.Trust) error {
	if env.SignedScope != "" && env.SignedScope != scope {
		kind, name, _ := strings.Cut(scope, "/")
		return newError(ErrWrongScope, nil,
			"target version %d was signed for %s but arrived on the topic of %s: a signed target is valid only for the device or group it was signed for; push it again with tern push --%s %s",
			env.Version, env.SignedScope, scope, kind, name)
	}
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

// checkAddress refuses, in a parsed envelope, a missing or malformed
// "prefix" or "fleet"; fix says how to make a good envelope.
func checkAddress(what, fix, prefix, fleet string) error {
	switch {
	case fleet == "":
		return newError(ErrMalformed, nil, `fleet: %s has no "fleet": name the fleet it is for, which its signature covers (%s does)`, what, fix)
	case prefix == "":
		return newError(ErrMalformed, nil, `fleet: %s has no "prefix": name the topic prefix of the fleet it is for, %q unless the fleet uses another, which its signature covers (%s does)`, what, DefaultPrefix, fix)
	}
	if p := idProblem(fleet); p != "" {
		return newError(ErrMalformed, nil, `fleet: %s: bad "fleet": %s`, what, p)
	}
	for level := range strings.SplitSeq(prefix, "/") {
		if p := idProblem(level); p != "" {
			return newError(ErrMalformed, nil, `fleet: %s: bad "prefix" %.70q: levels are separated by single slashes: %s`, what, prefix, p)
		}
	}
	return nil
}

// checkTopics refuses an envelope (what) made for the fleet and prefix
// other than t's; cmd is the command that makes one, e.g. "tern push".
func checkTopics(what, prefix, fleet string, t Topics, cmd string) error {
	if prefix == t.prefix() && fleet == t.Fleet {
		return nil
	}
	flags := "--fleet " + t.Fleet
	if t.prefix() != DefaultPrefix {
		flags += " --prefix " + t.prefix()
	}
	return newError(ErrWrongFleet, nil,
		"fleet: %s was made for fleet %q with topic prefix %q, not for fleet %q with prefix %q: what is signed for one fleet is not valid in another; sign it for fleet %s with %s %s",
		what, fleet, prefix, t.Fleet, t.prefix(), t.Fleet, cmd, flags)
}
