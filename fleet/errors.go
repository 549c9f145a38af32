package fleet

import (
	"errors"
	"fmt"
)

// Sentinel errors, for callers that branch on the condition. Errors returned
// by this package match them with [errors.Is] and carry a message that stands
// on its own.
var (
	// ErrOffline means the client is not connected to the broker right now,
	// or lost the connection before the broker acknowledged a publish. The
	// message was not (or not provably) delivered; retry later.
	ErrOffline = errors.New("fleet: not connected to the broker")

	// ErrTooLarge means a payload is over [MaxPayload] (a module release:
	// over [MaxReleasePayload], or its code over [MaxModuleSize]).
	ErrTooLarge = errors.New("fleet: payload too large")

	// ErrUnsupportedFormat means a payload's "format" is not [Format].
	ErrUnsupportedFormat = errors.New("fleet: unsupported payload format")

	// ErrMalformed means a payload is not a valid document of its kind.
	ErrMalformed = errors.New("fleet: malformed payload")

	// ErrWrongFleet means an envelope was made (and signed) for another
	// fleet or topic prefix than the one it arrived in: a replay from
	// another fleet, or an operator who forgot --fleet.
	ErrWrongFleet = errors.New("fleet: made for another fleet")

	// ErrWrongScope means a target signed for one device or group arrived
	// on the topic of another.
	ErrWrongScope = errors.New("fleet: signed for another device or group")

	// ErrHashMismatch means a module release's code does not match the
	// size or SHA-256 its envelope states: it was cut short or changed
	// after the envelope was made.
	ErrHashMismatch = errors.New("fleet: module code does not match its hash")
)

// fleetError has its own message but still matches a sentinel (kind) and,
// if any, the error that caused it.
type fleetError struct {
	msg   string
	kind  error
	cause error
}

func (e *fleetError) Error() string { return e.msg }

func (e *fleetError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// newError returns an error with the formatted message that matches kind
// and cause with errors.Is. cause may be nil.
func newError(kind, cause error, format string, args ...any) error {
	return &fleetError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}
