package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// MaxJobs bounds how many jobs a device keeps: a broker holding 10,000
// retained jobs for one device does not make it store, schedule and
// report 10,000 at once. When the book is full, a new job makes it forget
// the oldest ended job; with none ended, the new job is refused.
const MaxJobs = 1000

// Book is the device's jobs, kept in its store: a job is on the disk
// before Offer returns, so one that was acknowledged survives a power
// cut. It is safe for concurrent use.
type Book struct {
	st store.Store
	mu sync.Mutex
	by map[string]*Job // by scope
	// gone are the versions of jobs forgotten after they ended, by
	// scope: their retained messages come again with every connection,
	// and must not run again.
	gone        map[string]uint64
	interrupted []string // scopes Open found running
}

// bookPrefix is where the Book keeps its jobs in the store, one key per
// job: bookPrefix + scope; gonePrefix, the version of each job forgotten.
const (
	bookPrefix = "jobs/"
	gonePrefix = "jobs-gone/"
)

// Open reads the jobs kept in st. A job that was running when the device
// stopped is interrupted: it runs again (its state back to queued) only
// if it said it may (RetryInterrupted); otherwise it ends interrupted.
func Open(st store.Store) (*Book, error) {
	b := &Book{st: st, by: map[string]*Job{}, gone: map[string]uint64{}}
	err := st.Scan([]byte(bookPrefix), func(key, value []byte) error {
		var j Job
		if err := json.Unmarshal(value, &j); err != nil {
			return fmt.Errorf("jobs: stored job %s: %w", key, err)
		}
		b.by[j.Scope] = &j
		return nil
	})
	if err == nil {
		err = st.Scan([]byte(gonePrefix), func(key, value []byte) error {
			v, err := strconv.ParseUint(string(value), 10, 64)
			if err != nil {
				return fmt.Errorf("jobs: forgotten job %s: %w", key, err)
			}
			b.gone[strings.TrimPrefix(string(key), gonePrefix)] = v
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	for _, j := range b.by {
		if j.State.Phase != PhaseRunning {
			continue
		}
		switch {
		case j.RetryInterrupted:
			// Tried again as a retry: the same run, past any deadline.
			j.State.Phase, j.State.RetryAt = PhaseQueued, j.State.Started
			j.State.Why = "it was running when the device stopped; it runs again (retry_interrupted)"
		case j.Spec.Cron != "":
			// The run ended interrupted; the schedule goes on.
			j.State.AddRun(RunRecord{Scheduled: j.State.Last, Started: j.State.Started, Ended: j.State.Started, Phase: string(PhaseInterrupted), Attempts: j.State.Attempt,
				Error: "the device stopped while it ran"})
			j.State.Phase, j.State.RetryAt = PhaseQueued, time.Time{}
			j.State.Why = "its last run was running when the device stopped; not run again (retry_interrupted not set)"
		default:
			j.State.Phase, j.State.Ended = PhaseInterrupted, j.State.Started
			j.State.Why = "it was running when the device stopped; not run again (retry_interrupted not set)"
		}
		if err := b.put(j); err != nil {
			return nil, err
		}
		b.interrupted = append(b.interrupted, j.Scope)
	}
	sort.Strings(b.interrupted)
	return b, nil
}

// Interrupted returns the scopes of the jobs Open found running: the
// device stopped while they ran.
func (b *Book) Interrupted() []string { return b.interrupted }

// Errors Offer refuses a job with.
var (
	// ErrOlder: the book holds this version of the job or a newer one.
	ErrOlder = errors.New("jobs: not newer than the version held")
	// ErrFull: the book holds MaxJobs jobs.
	ErrFull = errors.New("jobs: the device holds as many jobs as it may")
	// ErrStarted: the job has started or ended; an edit comes too late.
	ErrStarted = errors.New("jobs: started already")
	// ErrChanged: Update of a version the book no longer holds.
	ErrChanged = errors.New("jobs: a new version came meanwhile")
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
	if gone, forgotten := b.gone[j.Scope]; !ok && forgotten {
		if j.Version <= gone {
			return fmt.Errorf("%w: job %s version %d ended and was forgotten at version %d", ErrOlder, j.Spec.ID, j.Version, gone)
		}
		return fmt.Errorf("%w: job %s ended (and was forgotten to make room) before version %d came", ErrStarted, j.Spec.ID, j.Version)
	}
	if !ok && len(b.by) >= MaxJobs {
		if err := b.forgetOldestEnded(); err != nil {
			return err
		}
	}
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

// Wants reports, without changing anything, whether Offer would consider
// version of the job scope: ErrOlder for a version held already (a
// redelivery: every connection brings every retained job again), ErrFull
// for a new job when the book is full and none has ended, nil otherwise.
// A caller checks it before costly work on a job (its signature).
func (b *Book) Wants(scope string, version uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	held, ok := b.by[scope]
	switch {
	case ok && version <= held.Version:
		return ErrOlder
	case !ok && b.gone[scope] >= version && version > 0:
		return ErrOlder
	case !ok && len(b.by) >= MaxJobs:
		for _, j := range b.by {
			if j.State.Phase.Ended() {
				return nil
			}
		}
		return fmt.Errorf("%w (%d, none ended)", ErrFull, MaxJobs)
	}
	return nil
}

// Update stores the new state of version of a job (the caller's
// scheduler decided, a run started or ended). It refuses (ErrChanged)
// when another version came meanwhile: an edit or a cancel is not undone
// by a decision about the version before it.
func (b *Book) Update(scope string, version uint64, st State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	j, ok := b.by[scope]
	if !ok {
		return fmt.Errorf("jobs: no job %s", scope)
	}
	if j.Version != version {
		return fmt.Errorf("%w: job %s is at version %d, not %d", ErrChanged, j.Spec.ID, j.Version, version)
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

// Forget drops an ended job from the book, to make room. Its version is
// kept (a few bytes): the job's retained message comes again with every
// connection and is refused as ended, not run again.
func (b *Book) Forget(scope string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forget(scope)
}

func (b *Book) forget(scope string) error {
	j, ok := b.by[scope]
	if !ok {
		return nil
	}
	if !j.State.Phase.Ended() {
		return fmt.Errorf("jobs: job %s is %s; only an ended job is forgotten", j.Spec.ID, j.State.Phase)
	}
	if err := b.st.Put([]byte(gonePrefix+scope), []byte(strconv.FormatUint(j.Version, 10))); err != nil {
		return fmt.Errorf("jobs: forget %s: %w", scope, err)
	}
	if err := b.st.Delete([]byte(bookPrefix + scope)); err != nil {
		return fmt.Errorf("jobs: forget %s: %w", scope, err)
	}
	b.gone[scope] = j.Version
	delete(b.by, scope)
	return nil
}

// forgetOldestEnded makes room for a new job: it forgets the ended job
// with the oldest id, or refuses (ErrFull) when none has ended.
func (b *Book) forgetOldestEnded() error {
	var oldest *Job
	for _, j := range b.by {
		if j.State.Phase.Ended() && (oldest == nil || j.Spec.ID < oldest.Spec.ID || j.Spec.ID == oldest.Spec.ID && j.Scope < oldest.Scope) {
			oldest = j
		}
	}
	if oldest == nil {
		return fmt.Errorf("%w (%d, none ended): a new job is refused; cancel some (tern job cancel) or let them end", ErrFull, MaxJobs)
	}
	return b.forget(oldest.Scope)
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
