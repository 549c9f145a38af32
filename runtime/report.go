package runtime

import (
	"encoding/json"
	"time"
)

// EventKind names what happened. Kinds are part of the fleet contract:
// operators filter on them, so they are never renamed.
type EventKind string

// Event kinds the agent emits.
const (
	EventTargetAccepted   EventKind = "target.accepted" // a new target was stored
	EventTargetRefused    EventKind = "target.refused"  // a target was refused (older version, bad document)
	EventPlanFound        EventKind = "plan.found"      // the planner produced a plan
	EventPlanFailed       EventKind = "plan.failed"     // no plan reaches the target
	EventReplan           EventKind = "plan.replan"     // planning again: after a failure, drift or a new target
	EventPlanResumed      EventKind = "plan.resumed"    // a plan was interrupted (crash, power cut); re-planning from its progress
	EventTaskStarted      EventKind = "task.started"
	EventTaskDone         EventKind = "task.done"
	EventTaskFailed       EventKind = "task.failed"
	EventConverged        EventKind = "converged" // the sensed state satisfies the target
	EventDrift            EventKind = "drift"     // the sensed state left the target; re-planning
	EventModuleError      EventKind = "module.error"
	EventModuleRolledBack EventKind = "module.rolled_back" // a module version kept failing; the previous one runs again
	EventModuleInstalled  EventKind = "module.installed"   // new code for a module (a release) was installed and runs
	EventModuleRefused    EventKind = "module.refused"     // new code for a module was refused (signature, version, hash, size, load); the old code keeps running
	EventReportsDropped   EventKind = "events.dropped"     // the outbox was full while offline; the oldest reports were dropped
)

// Event is one step of the agent's work, reported to the fleet.
type Event struct {
	// ID is unique per device and event, so a consumer can drop duplicates.
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	Kind          EventKind `json:"kind"`
	TargetVersion uint64    `json:"target_version,omitempty"`
	Module        string    `json:"module,omitempty"`
	Job           string    `json:"job,omitempty"`
	Path          string    `json:"path,omitempty"`
	Message       string    `json:"message,omitempty"`
}

// Phase is what the agent is doing.
type Phase string

// Agent phases.
const (
	PhaseIdle     Phase = "idle"     // converged, or no target yet
	PhasePlanning Phase = "planning" // searching for a plan
	PhaseRunning  Phase = "running"  // executing a plan
	PhaseFailed   Phase = "failed"   // the last attempt failed; retrying with backoff
)

// Status is the agent's report of itself: what it senses, which target it
// holds and whether it has reached it.
type Status struct {
	Time          time.Time         `json:"time"`
	TargetVersion uint64            `json:"target_version"`
	Converged     bool              `json:"converged"`
	Phase         Phase             `json:"phase"`
	State         json.RawMessage   `json:"state"`
	Error         string            `json:"error,omitempty"`
	Modules       map[string]string `json:"modules,omitempty"` // module name → version
}
