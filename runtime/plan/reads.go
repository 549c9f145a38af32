package plan

import (
	"slices"

	"github.com/tern-iot/tern/runtime/state"
)

// maxReads bounds the paths one answer is recorded as reading, besides its
// own; an answer that read more counts as having read the whole state,
// which orders it after and before everything (correct, only less
// parallel).
const maxReads = 64

// recorder is the state a job reads during Find: the search's working
// copy, with every path read remembered.
type recorder struct {
	w     *work
	reads []state.Pointer
}

func (r *recorder) Get(p state.Pointer) (any, bool) {
	if len(r.reads) <= maxReads && !slices.ContainsFunc(r.reads, func(q state.Pointer) bool { return slices.Equal(p, q) }) {
		r.reads = append(r.reads, slices.Clone(p))
	}
	return state.Get(r.w.doc, p)
}

// paths is what was read, collapsed to the root past maxReads.
func (r *recorder) paths() []state.Pointer {
	if len(r.reads) > maxReads {
		return []state.Pointer{{}}
	}
	return r.reads
}

// An answer is remembered with what its job read, and serves again only
// while those paths hold the same values.
type memoEntry struct {
	r     Result
	reads []readValue
}

type readValue struct {
	p       state.Pointer
	present bool
	hash    uint64
}

// memoPerKey bounds the answers kept for one question (the same job,
// values and path, with different values elsewhere).
const memoPerKey = 8

func (s *search) readValue(p state.Pointer) readValue {
	if len(p) == 0 {
		return readValue{p: p, present: true, hash: s.w.hash}
	}
	v, ok := state.Get(s.w.doc, p)
	rv := readValue{p: p, present: ok}
	if ok {
		rv.hash = state.Hash(v)
	}
	return rv
}

// recall finds a remembered answer whose reads still hold.
func (s *search) recall(key string) (memoEntry, bool) {
next:
	for _, e := range s.memo[key] {
		for _, rv := range e.reads {
			if now := s.readValue(rv.p); now.present != rv.present || now.hash != rv.hash {
				continue next
			}
		}
		return e, true
	}
	return memoEntry{}, false
}

// remember keeps r, which read reads, under key.
func (s *search) remember(key string, r Result, reads []state.Pointer) memoEntry {
	e := memoEntry{r: r}
	for _, p := range reads {
		e.reads = append(e.reads, s.readValue(p))
	}
	list := s.memo[key]
	if len(list) >= memoPerKey {
		list = list[1:]
	}
	s.memo[key] = append(list, e)
	return e
}

func (e memoEntry) paths() []state.Pointer {
	if len(e.reads) == 0 {
		return nil
	}
	ps := make([]state.Pointer, len(e.reads))
	for i, rv := range e.reads {
		ps[i] = rv.p
	}
	return ps
}
