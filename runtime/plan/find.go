package plan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tern-iot/tern/runtime/state"
	"github.com/tern-iot/tern/sdk/abi"
)

// Find searches for a plan that moves current to target. Neither is
// modified. See the package documentation for how it searches, and for
// what Options.Partial changes when part of the target cannot be reached.
func Find(ctx context.Context, jobs []*Job, ev Evaluator, current, target any, opts Options) (*Plan, error) {
	start := time.Now()
	lim := opts.Limits.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Time)
	defer cancel()
	if _, ok := target.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: the target must be a JSON object", ErrNoPlan)
	}
	jobs = sortJobs(jobs)
	byName := map[string]*Job{}
	for _, j := range jobs {
		byName[j.Name()] = j
	}
	var left leftOut
	// A method's step may name any path with any target: with methods, no
	// place is known hopeless (partial.go).
	methods := opts.Partial && slices.ContainsFunc(jobs, func(j *Job) bool { return j.Spec.IsMethod() })
	// The answers stay valid from one round to the next: a key names the
	// job, the values it was given and its path, and an entry the values
	// it read.
	memo := map[string][]memoEntry{}
	var stats Stats
	for {
		s := &search{
			ctx: ctx, ev: ev, lim: lim, strict: opts.Strict, mayExpand: opts.MayExpand,
			jobs: jobs, byName: byName, strictCands: map[string][]cand{},
			w: newWork(current), target: target, kept: left.kept,
			visited: map[uint64]struct{}{}, memo: memo, stats: stats,
		}
		if opts.Partial && !methods {
			s.hope = &hope{initial: current, onlyHere: map[int]bool{}}
		}
		s.g = newGoal(target, jobs, s.w.doc)
		if opts.Partial && stats.Rounds == 0 {
			if drop := s.unbound(); len(drop) > 0 {
				target = left.drop(target, drop)
				s.target, s.kept = target, left.kept
				s.g = newGoal(target, jobs, s.w.doc)
			}
		}
		found, err := s.dfs(0)
		stats = s.stats
		stats.Duration = time.Since(start)
		if err != nil {
			return nil, err
		}
		if found {
			p := &Plan{Tasks: s.tasks, Stats: stats, Unreached: left.sorted()}
			for i, t := range p.Tasks {
				t.ID = i
			}
			link(p)
			return p, nil
		}
		e := s.noPlan()
		// A bound hit means the search did not finish: what it left unmet
		// may well be reachable, so it is no ground to drop anything.
		if !opts.Partial || e.Bound != "" || len(e.Places) == 0 {
			return nil, e
		}
		stats.Rounds++
		target = left.drop(target, e.Places)
	}
}

// Satisfied reports whether current meets target as Find understands it:
// Satisfies, and in strict mode no key the target leaves out that a job
// could delete.
func Satisfied(jobs []*Job, current, target any, strict bool) bool {
	if !state.Satisfies(current, target) {
		return false
	}
	if !strict {
		return true
	}
	s := &search{jobs: sortJobs(jobs), strictCands: map[string][]cand{}, w: &work{doc: current}, target: target}
	s.g = newGoal(target, s.jobs, current)
	return len(s.strictOps()) == 0
}

type search struct {
	ctx    context.Context
	ev     Evaluator
	lim    Limits
	strict bool

	jobs        []*Job
	byName      map[string]*Job
	mayExpand   func(method, job *Job) error
	strictCands map[string][]cand

	w       *work
	g       *goal
	target  any
	visited map[uint64]struct{}
	memo    map[string][]memoEntry
	tasks   []*Task
	via     []string
	stats   Stats

	// kept are paths a partial plan leaves as they are: strict mode does
	// not delete them (partial.go).
	kept map[string]bool
	// hope, in a partial search with no methods, looks for hopeless
	// places at dead ends (partial.go); nil otherwise.
	hope *hope

	stuck     *stuckAt // the furthest point the search got stuck at
	boundHit  string
	revisited bool // the last dfs call found its state visited
}

// op is a change the target asks for at one path.
type op struct {
	ptr    state.Pointer
	path   string // ptr as text
	op     abi.Op
	target json.RawMessage
	cands  []cand
}

type stuckAt struct {
	depth  int
	tasks  int
	places []Stuck
}

// eachOp calls fn with every change the target still asks for, parents
// before children (Walk order), then in strict mode the deletes, until fn
// returns false. It is lazy: a search that takes the first choice never
// lists the rest. fn may change the state if it undoes the change before
// returning.
func (s *search) eachOp(fn func(op) bool) {
	more := true
	s.g.pending(func(i int) bool {
		p := &s.g.places[i]
		_, present := state.Get(s.w.doc, p.ptr)
		more = fn(op{ptr: p.ptr, path: p.path, op: Op(present, p.raw), target: p.raw, cands: p.cands})
		return more
	})
	if more && s.strict {
		for _, o := range s.strictOps() {
			if !fn(o) {
				return
			}
		}
	}
}

// done reports whether the state meets the target.
func (s *search) done() bool {
	return s.g.met() && (!s.strict || len(s.strictOps()) == 0)
}

// strictOps lists the deletes of strict mode: keys the state has under an
// object the target names, which the target leaves out and a job can delete.
func (s *search) strictOps() []op {
	var ops []op
	for i := range s.g.places {
		p := &s.g.places[i]
		tm, ok := p.target.(map[string]any)
		if !ok {
			continue
		}
		cur, _ := state.Get(s.w.doc, p.ptr)
		cm, ok := cur.(map[string]any)
		if !ok {
			continue
		}
		var extra []string
		for k := range cm {
			if _, named := tm[k]; !named {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		for _, k := range extra {
			ptr := p.ptr.Append(k)
			key := ptr.String()
			if s.kept[key] {
				continue
			}
			cands, ok := s.strictCands[key]
			if !ok {
				for _, j := range s.jobs {
					if params, ok := j.Pattern.Match(ptr); ok && j.Spec.Op.Matches(abi.Delete) {
						cands = append(cands, cand{job: j, params: params})
					}
				}
				s.strictCands[key] = cands
			}
			if len(cands) > 0 {
				ops = append(ops, op{ptr: ptr, path: key, op: abi.Delete, target: json.RawMessage("null"), cands: cands})
			}
		}
	}
	return ops
}

func (s *search) dfs(depth int) (bool, error) {
	if s.done() {
		return true, nil
	}
	if s.hope != nil && s.hope.found {
		return false, nil
	}
	if depth >= s.lim.Depth {
		s.boundHit = fmt.Sprintf("the search reached its depth bound (%d steps)", s.lim.Depth)
		s.record(depth, nil)
		return false, nil
	}
	if _, seen := s.visited[s.w.hash]; seen {
		s.revisited = true // a cycle, or a state already explored without success
		return false, nil
	}
	s.visited[s.w.hash] = struct{}{}
	s.stats.States++
	tried := map[string][]Attempt{}
	var found bool
	var err error
	s.eachOp(func(o op) bool {
		key := o.path
		for _, c := range o.cands {
			if !c.job.Spec.Op.Matches(o.op) {
				tried[key] = append(tried[key], Attempt{Job: c.job.Name(), Why: fmt.Sprintf("binds %s, this is %s", c.job.Spec.Op, o.op)})
				continue
			}
			mark, ntasks, before := len(s.w.log), len(s.tasks), s.w.hash
			var why string
			if why, err = s.apply(c.job, o.ptr, o.path, c.params, o.target, 0); err != nil {
				return false
			}
			if why == "" && s.w.hash == before {
				why = "applies, but changes nothing"
			}
			if why == "" {
				s.revisited = false
				if found, err = s.dfs(depth + 1); err != nil || found {
					return false
				}
				why = "applies, but no plan continues from there"
				if s.revisited {
					why = "applies, but leads back to a state already tried (a cycle)"
				}
				s.revisited = false
				s.stats.Backtracks++
			}
			tried[key] = append(tried[key], Attempt{Job: c.job.Name(), Why: why})
			s.undo(mark, ntasks)
			if s.hope != nil && s.hope.found {
				return false // a hopeless place: no other choice can help
			}
		}
		return true
	})
	if err != nil || found || s.hope != nil && s.hope.found {
		return found, err
	}
	s.record(depth, func(ptr string) []Attempt { return tried[ptr] })
	if s.hope != nil {
		if places := s.hopeless(tried); len(places) > 0 {
			s.stuck = &stuckAt{depth: depth, tasks: len(s.tasks), places: places}
			s.hope.found = true
		}
	}
	return false, nil
}

func (s *search) undo(mark, ntasks int) {
	s.w.rollback(mark, func(u state.Pointer) { s.g.changed(s.w.doc, u) })
	s.tasks = s.tasks[:ntasks]
}

// apply tries job j on ptr and, when it applies, changes the working state
// and appends its tasks. It returns why it did not apply ("" if it did),
// or an error that ends the search.
func (s *search) apply(j *Job, ptr state.Pointer, path string, params map[string]string, target json.RawMessage, methodDepth int) (string, error) {
	if err := s.ctx.Err(); err != nil {
		return "", errBoundOr(err, s.lim)
	}
	if s.stats.Tries++; s.stats.Tries > s.lim.Tries {
		return "", fmt.Errorf("%w: tried %d jobs without finding a plan (the limit)", ErrNoPlan, s.lim.Tries)
	}
	if k := s.keptAt(ptr); k != "" && !j.Spec.IsMethod() {
		return "the partial plan leaves " + k + " as it is (unreached)", nil
	}
	cur, present := state.Get(s.w.doc, ptr)
	call := abi.Call{Job: j.Spec.Name, Path: path, Params: params, Target: target}
	if present {
		call.Current = state.Canonical(cur)
	}
	r, reads, err := s.try(j, call)
	if err != nil {
		if s.ctx.Err() != nil {
			return "", errBoundOr(s.ctx.Err(), s.lim)
		}
		return "failed: " + err.Error(), nil
	}
	if !r.OK {
		return "condition does not hold", nil
	}
	if !j.Spec.IsMethod() {
		if len(s.tasks) >= s.lim.Tasks {
			return "", fmt.Errorf("%w: the plan would have more than %d tasks (the limit)", ErrNoPlan, s.lim.Tasks)
		}
		unit, err := s.w.apply(ptr, state.Clone(r.Effect)) // answers are remembered: never share them
		if err != nil {
			return "effect cannot be applied: " + err.Error(), nil
		}
		s.g.changed(s.w.doc, unit)
		s.tasks = append(s.tasks, &Task{
			Job: j, Op: Op(present, target), Path: ptr, Params: params,
			Target: target, Effect: r.Effect, Via: append([]string(nil), s.via...),
			Reads: reads,
		})
		return "", nil
	}
	if methodDepth >= s.lim.MethodDepth {
		return fmt.Sprintf("methods nest deeper than %d", s.lim.MethodDepth), nil
	}
	s.via = append(s.via, j.Name()+" "+path)
	defer func() { s.via = s.via[:len(s.via)-1] }()
	for i, st := range r.Steps {
		if st.Here {
			st.Path = ptr
		}
		sj, params, why := s.resolve(j, st)
		if why == "" {
			t := st.Target
			if t == nil {
				if tv, ok := state.Get(s.target, st.Path); ok {
					t = state.Canonical(tv)
				}
			}
			why, err = s.apply(sj, st.Path, st.Path.String(), params, t, methodDepth+1)
			if err != nil {
				return "", err
			}
		}
		if why != "" {
			return fmt.Sprintf("step %d (%s %s): %s", i+1, st.Job, st.Path, why), nil
		}
	}
	return "", nil
}

// try asks about j, remembering the answers: the search may ask the same
// question again after backtracking, and an answer that did not depend on
// the path (PathFree) serves every path with the same values. It returns
// the other paths the job read (reads.go).
func (s *search) try(j *Job, c abi.Call) (Result, []state.Pointer, error) {
	if j.declarative() {
		r, err := try(s.ctx, s.ev, j, c, nil)
		return r, nil, err
	}
	free := j.Name() + "\x00" + string(c.Current) + "\x00" + string(c.Target)
	if e, ok := s.recall(free); ok {
		return e.r, e.paths(), nil
	}
	full := free + "\x00" + c.Path
	if e, ok := s.recall(full); ok {
		return e.r, e.paths(), nil
	}
	rec := &recorder{w: s.w}
	r, err := try(s.ctx, s.ev, j, c, rec)
	s.stats.Calls++
	if err != nil {
		return r, nil, err
	}
	key := full
	if r.PathFree {
		key = free
	}
	return r, s.remember(key, r, rec.paths()).paths(), nil
}

// resolve finds a method step's job and binds its parameters.
func (s *search) resolve(method *Job, st Step) (*Job, map[string]string, string) {
	name := st.Job
	if !strings.Contains(name, ".") {
		name = method.Module + "." + name
	}
	j, ok := s.byName[name]
	if !ok {
		return nil, nil, "no job " + name
	}
	if j.Module != method.Module && s.mayExpand != nil {
		if err := s.mayExpand(method, j); err != nil {
			return nil, nil, err.Error()
		}
	}
	params, ok := j.Pattern.Match(st.Path)
	if !ok {
		return nil, nil, fmt.Sprintf("%s binds %s, which does not match the path", name, j.Pattern)
	}
	return j, params, ""
}

func errBoundOr(err error, lim Limits) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the search took longer than %v (the limit)", ErrNoPlan, lim.Time)
	}
	return err
}

// record keeps what was tried where the search got furthest: the deepest
// dead end, and at equal depth the first.
func (s *search) record(depth int, tried func(ptr string) []Attempt) {
	if s.stuck != nil && s.stuck.depth >= depth {
		return
	}
	at := &stuckAt{depth: depth, tasks: len(s.tasks)}
	for _, i := range s.g.unmetLeaves() {
		p := &s.g.places[i]
		st := Stuck{Path: p.ptr.String(), Target: string(p.raw)}
		if cur, ok := state.Get(s.w.doc, p.ptr); ok {
			st.Current = string(state.Canonical(cur))
		}
		// The attempts may be at the leaf or at an ancestor that binds.
		for q := i; q >= 0; q = s.g.places[q].parent {
			qp := s.g.places[q].ptr.String()
			if tried != nil {
				if a := tried(qp); len(a) > 0 {
					st.At, st.Tried = qp, a
					break
				}
			}
			if st.At == "" && s.g.bound.has(q) {
				st.At = qp
			}
		}
		at.places = append(at.places, st)
	}
	if s.strict {
		for _, o := range s.strictOps() {
			st := Stuck{Path: o.ptr.String(), Target: "null", At: o.ptr.String()}
			if cur, ok := state.Get(s.w.doc, o.ptr); ok {
				st.Current = string(state.Canonical(cur))
			}
			if tried != nil {
				st.Tried = tried(st.Path)
			}
			at.places = append(at.places, st)
		}
	}
	s.stuck = at
}

func (s *search) noPlan() *NoPlanError {
	e := &NoPlanError{Bound: s.boundHit}
	if s.stuck != nil {
		e.After, e.Places = s.stuck.tasks, s.stuck.places
	}
	return e
}
