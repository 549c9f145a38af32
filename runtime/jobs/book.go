package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tern-iot/tern/runtime/store"
)

// Job is a job as the device keeps it: what to run, when (Spec), which
// version of it, and what happened to it (State).
type Job struct {
	// Scope is where the job came from and what its signature covered:
	// device/<id>/job/<id> or group/<name>/job/<id>.
	Scope   string          `json:"scope"`
	Version uint64          `json:"version"`
	Module  string          `json:"module"`
	Job     string          `json:"job"`
	Args    json.RawMessage `json:"args,omitempty"`
	Spec    Spec            `json:"spec"`
	// RetryInterrupted: a run the device's stop interrupted may run again.
	RetryInterrupted bool `json:"retry_interrupted,omitempty"`
	// Canceled by the operator.
	Canceled bool  `json:"canceled,omitempty"`
	State    State `json:"state"`
}

// MaxJobs bounds how many jobs a device keeps that have not ended: a
// broker holding 10,000 retained jobs for one device does not make it
// store, schedule and report 10,000. Ended jobs count too until they are
// forgotten (Forget).
const MaxJobs = 1000

// Book is the device's jobs, kept in its store: a job is on the disk
// before Offer returns, so one that was acknowledged survives a power
// cut. It is safe for concurrent use.
type Book struct {
	st store.Store
	mu sync.Mutex
	by map[string]*Job // by scope
}

// bookPrefix is where the Book keeps its jobs in the store, one key per
// job: bookPrefix + scope.
const bookPrefix = "jobs/"

// Open reads the jobs kept in st. A job that was running when the device
// stopped is interrupted: it runs again (its state back to queued) only
// if it said it may (RetryInterrupted); otherwise it ends interrupted.
func Open(st store.Store) (*Book, error) {
	b := &Book{st: st, by: map[string]*Job{}}
	err := st.Scan([]byte(bookPrefix), func(key, value []byte) error {
		var j Job
		if err := json.Unmarshal(value, &j); err != nil {
			return fmt.Errorf("jobs: stored job %s: %w", key, err)
		}
		b.by[j.Scope] = &j
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, j := range b.by {
		if j.State.Phase != PhaseRunning {
			continue
		}
		if j.RetryInterrupted {
			j.State.Phase = PhaseQueued
		} else {
			j.State.Phase = PhaseInterrupted
		}
		if err := b.put(j); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Errors Offer refuses a job with.
var (
	// ErrOlder: the book holds this version of the job or a newer one.
	ErrOlder = errors.New("jobs: not newer than the version held")
	// ErrFull: the book holds MaxJobs jobs.
	ErrFull = errors.New("jobs: the device holds as many jobs as it may")
	// ErrStarted: the job has started or ended; an edit comes too late.
	ErrStarted = errors.New("jobs: started already")
)

// Offer keeps j, a new job or a newer version of one held, and returns
// once it is on the disk. A newer version replaces a job that has not
// started (an edit); a cancel ends one that has not ended. It refuses
// (ErrOlder) a version not above the one held, which makes redelivery
// harmless, (ErrStarted) an edit of a job that started, and (ErrFull) a
// new job beyond MaxJobs.
func (b *Book) Offer(j Job) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	held, ok := b.by[j.Scope]
	switch {
	case ok && j.Version <= held.Version:
		return fmt.Errorf("%w: job %s version %d, holding %d", ErrOlder, j.Spec.ID, j.Version, held.Version)
	case ok && j.Canceled:
		if held.State.Phase.Ended() {
			return fmt.Errorf("%w: job %s ended %s before the cancel", ErrStarted, j.Spec.ID, held.State.Phase)
		}
		if held.State.Phase == PhaseRunning {
			return fmt.Errorf("%w: job %s is running; it ends as it ends", ErrStarted, j.Spec.ID)
		}
		j.State = held.State
		j.State.Phase = PhaseCanceled
	case ok && (held.State.Phase == PhaseRunning || held.State.Phase.Ended() || !held.State.Last.IsZero()):
		return fmt.Errorf("%w: job %s is %s; a new version applies to devices that have not started it", ErrStarted, j.Spec.ID, held.State.Phase)
	case !ok && len(b.by) >= MaxJobs:
		return fmt.Errorf("%w (%d): job %s refused; cancel or let some end", ErrFull, MaxJobs, j.Spec.ID)
	case j.Canceled:
		j.State = State{Phase: PhaseCanceled}
	default:
		j.State = State{Phase: PhaseQueued}
	}
	if err := b.put(&j); err != nil {
		return err
	}
	b.by[j.Scope] = &j
	return nil
}

// Update stores a job's new state (the caller's scheduler decided, a run
// started or ended).
func (b *Book) Update(scope string, st State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.by[scope]
	if !ok {
		return fmt.Errorf("jobs: no job %s", scope)
	}
	next := *j
	next.State = st
	if err := b.put(&next); err != nil {
		return err
	}
	*j = next
	return nil
}

// Jobs returns copies of the jobs held, ordered by id (so by the time they
// were made, for ids from fleet.NewJobID), then scope.
func (b *Book) Jobs() []Job {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Job, 0, len(b.by))
	for _, j := range b.by {
		out = append(out, *j)
	}
	sort.Slice(out, func(i, k int) bool {
		if out[i].Spec.ID != out[k].Spec.ID {
			return out[i].Spec.ID < out[k].Spec.ID
		}
		return out[i].Scope < out[k].Scope
	})
	return out
}

// Forget drops an ended job from the book, to make room.
func (b *Book) Forget(scope string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.by[scope]
	if !ok {
		return nil
	}
	if !j.State.Phase.Ended() {
		return fmt.Errorf("jobs: job %s is %s; only an ended job is forgotten", j.Spec.ID, j.State.Phase)
	}
	if err := b.st.Delete([]byte(bookPrefix + scope)); err != nil {
		return fmt.Errorf("jobs: forget %s: %w", scope, err)
	}
	delete(b.by, scope)
	return nil
}

func (b *Book) put(j *Job) error {
	v, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("jobs: store %s: %w", j.Scope, err)
	}
	if err := b.st.Put([]byte(bookPrefix+j.Scope), v); err != nil {
		return fmt.Errorf("jobs: store %s: %w", j.Scope, err)
	}
	return nil
}
