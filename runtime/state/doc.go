// Package state is tern's JSON state model: the values that hold a device's
// sensed state and its target, the paths into them, and the questions the
// planner asks about them.
//
// # Values
//
// A document is what encoding/json decodes into an any: map[string]any,
// []any, string, float64, bool and nil. Parse produces such values from
// outside input with limits that suit a small board. Equal, Hash and
// Canonical treat other Go number types (int, uint8, json.Number, …) as the
// number they hold, so a job's effect may write Set(doc, p, 3) and still
// compare equal to a parsed 3; every other type is outside the model.
//
// # Paths
//
// A Pointer is a decoded JSON Pointer (RFC 6901): one string per reference
// token, the empty Pointer meaning the whole document. Array elements are
// named by decimal indices without leading zeros; "-" names the slot past
// the end, which Set appends to and Get never finds.
//
// Set, Delete and MergePatch change a document in place where they can and
// return the new root (which differs from the old one when the root itself
// was replaced). The planner works on copies: Clone first when the old
// document must survive.
//
// # Targets
//
// A target is partial: it names only what the operator cares about, and a
// null in it means "this key must be absent", as in JSON Merge Patch
// (RFC 7386). Objects in a target are descended key by key; every other
// value (string, number, bool, array, null) is a leaf. Satisfies reports
// whether a state meets every leaf, and Unsatisfied lists the leaves it
// does not meet. Applying a target with MergePatch always yields a state
// that satisfies it.
//
// # Patterns
//
// Jobs bind to path patterns such as "/rooms/:room/heater": a ":name"
// token matches any one token and binds it.
//
// # Determinism
//
// The planner must produce the same plan from the same inputs, so nothing
// here depends on Go's map iteration order: Walk and Unsatisfied visit keys
// in sorted order, Hash and Canonical sort keys.
package state

import "errors"

// MaxDepth is how deeply Parse lets objects and arrays nest.
const MaxDepth = 64

// Errors callers branch on. Returned errors wrap one of them and say where.
var (
	// ErrSyntax means the input is not one well-formed JSON value.
	ErrSyntax = errors.New("state: invalid JSON")
	// ErrTooDeep means the input nests objects and arrays deeper than MaxDepth.
	ErrTooDeep = errors.New("state: JSON nested deeper than 64 levels")
	// ErrInvalidPointer means a string is not a JSON Pointer.
	ErrInvalidPointer = errors.New("state: invalid JSON pointer")
	// ErrInvalidPattern means a string is not a path pattern.
	ErrInvalidPattern = errors.New("state: invalid path pattern")
	// ErrNotContainer means a path goes through a value that is neither an
	// object nor an array (a string, number or bool).
	ErrNotContainer = errors.New("state: path goes through a value that is not an object or array")
	// ErrIndex means a token is not a valid index into the array it names.
	ErrIndex = errors.New("state: array index missing or out of range")
)
