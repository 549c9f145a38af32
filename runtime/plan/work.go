package plan

import (
	"hash/maphash"

	"github.com/tern-iot/tern/runtime/state"
)

// work is the search's copy of the state. Changes are made in place and
// logged, so a choice that leads nowhere is undone in what it changed, and
// the state's hash is kept up to date in what it changed too: the hash is
// the XOR, over every object and every other value in the document, of a
// hash of its path and (for values) of the value. Arrays count as values.
type work struct {
	doc  any
	hash uint64
	log  []undo
}

type undo struct {
	unit    state.Pointer // the place that was replaced
	old     any
	present bool
	hash    uint64 // the document's hash before
}

var seed = maphash.MakeSeed()

func newWork(doc any) *work {
	w := &work{doc: state.Clone(doc)}
	if w.doc == nil {
		w.doc = map[string]any{}
	}
	w.hash = subtreeHash(rootHash, w.doc)
	return w
}

const rootHash = 0x6a09e667f3bcc908

func pathHash(parent uint64, tok string) uint64 {
	return state.Mix(parent ^ maphash.String(seed, tok))
}

// subtreeHash is the XOR of the hashes of everything in v, which sits at
// the path whose hash is ph.
func subtreeHash(ph uint64, v any) uint64 {
	m, ok := v.(map[string]any)
	if !ok {
		return state.Mix(ph ^ state.Hash(v))
	}
	h := state.Mix(ph ^ 0x510e527fade682d1) // the object itself
	for k, x := range m {
		h ^= subtreeHash(pathHash(ph, k), x)
	}
	return h
}

func ptrHash(p state.Pointer) uint64 {
	h := uint64(rootHash)
	for _, tok := range p {
		h = pathHash(h, tok)
	}
	return h
}

// unitOf is the part of the document a change at p replaces as a whole:
// p itself, or its shallowest ancestor that is missing or not an object
// (arrays are values, and a missing ancestor is created with p).
func (w *work) unitOf(p state.Pointer) state.Pointer {
	node := w.doc
	for i := range p {
		m, ok := node.(map[string]any)
		if !ok {
			return p[:i]
		}
		next, ok := m[p[i]]
		if !ok {
			return p[:i+1]
		}
		node = next
	}
	return p
}

// apply sets p to v (nil deletes it) and returns the unit it replaced.
// On error nothing changed.
func (w *work) apply(p state.Pointer, v any) (state.Pointer, error) {
	unit := w.unitOf(p)
	old, present := state.Get(w.doc, unit)
	u := undo{unit: unit, old: old, present: present, hash: w.hash}
	uh := ptrHash(unit)
	before := uint64(0)
	if present {
		before = subtreeHash(uh, old)
		if len(unit) < len(p) {
			old = state.Clone(old) // an array or value changed inside: keep a copy
			u.old = old
		}
	}
	doc, err := state.Put(w.doc, p, v)
	if err != nil {
		return nil, err
	}
	w.doc = doc
	w.hash ^= before
	if now, ok := state.Get(w.doc, unit); ok {
		w.hash ^= subtreeHash(uh, now)
	}
	w.log = append(w.log, u)
	return unit, nil
}

// rollback undoes changes back to the log's length mark, calling fn with
// each unit it restores.
func (w *work) rollback(mark int, fn func(state.Pointer)) {
	for len(w.log) > mark {
		u := w.log[len(w.log)-1]
		w.log = w.log[:len(w.log)-1]
		if u.present { // a present null is restored, not deleted: not Put
			w.doc, _ = state.Set(w.doc, u.unit, u.old)
		} else {
			w.doc, _ = state.Delete(w.doc, u.unit)
		}
		w.hash = u.hash
		fn(u.unit)
	}
}
