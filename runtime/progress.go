package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tern-iot/tern/runtime/plan"
	"github.com/tern-iot/tern/runtime/store"
)

// keyPlan holds the plan in progress (see persist.go for the other keys).
var keyPlan = []byte("plan")

// progress is the plan in progress as stored: which target it serves and
// each task's outcome so far. It is written before the first task and after
// every task, and removed when the plan ends. The state written with it
// holds the effects of the tasks done, so after a crash the agent plans
// again from there and does not redo them; the record says what was cut
// short.
type progress struct {
	mu            sync.Mutex
	TargetVersion uint64         `json:"target_version"`
	Tasks         []progressTask `json:"tasks"`
}

type progressTask struct {
	Job    string `json:"job"`
	Path   string `json:"path"`
	Status string `json:"status"` // "pending", "done", "failed"
}

func newProgress(version uint64, p *plan.Plan) *progress {
	pr := &progress{TargetVersion: version}
	for _, t := range p.Tasks {
		pr.Tasks = append(pr.Tasks, progressTask{Job: t.Job.Name(), Path: t.Path.String(), Status: "pending"})
	}
	return pr
}

func (p *progress) set(id int, status string) *progress {
	p.mu.Lock()
	p.Tasks[id].Status = status
	p.mu.Unlock()
	return p
}

func (p *progress) count(status string) int {
	n := 0
	for _, t := range p.Tasks {
		if t.Status == status {
			n++
		}
	}
	return n
}

func (a *Agent) saveProgress(p *progress) {
	p.mu.Lock()
	b, err := json.Marshal(p)
	p.mu.Unlock()
	if err == nil {
		err = a.opts.Store.Put(keyPlan, b)
	}
	if err != nil {
		a.log.Warn("persisting plan progress failed", "err", err)
	}
}

func (a *Agent) clearProgress() {
	if err := a.opts.Store.Delete(keyPlan); err != nil {
		a.log.Warn("clearing plan progress failed", "err", err)
	}
}

// resumeProgress reports a plan a crash cut short, and clears it: the
// state stored with it already holds the effects of its finished tasks, so
// the next plan starts from there.
func (a *Agent) resumeProgress() error {
	b, err := a.opts.Store.Get(keyPlan)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runtime: reading plan progress: %w", err)
	}
	var p progress
	if err := json.Unmarshal(b, &p); err != nil {
		a.log.Warn("stored plan progress is corrupt; planning afresh", "err", err)
		a.clearProgress()
		return nil
	}
	msg := fmt.Sprintf("a plan for target version %d was cut short after %d of %d tasks; planning again from the state they left", p.TargetVersion, p.count("done"), len(p.Tasks))
	a.log.Warn("interrupted plan", "target_version", p.TargetVersion, "done", p.count("done"), "tasks", len(p.Tasks))
	a.event(Event{Kind: EventPlanResumed, TargetVersion: p.TargetVersion, Message: msg})
	a.replan = "resuming an interrupted plan"
	a.clearProgress()
	return nil
}
