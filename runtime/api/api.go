package api

import (
	"crypto/rand"
	"encoding/hex"
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
	EventPlanPartial      EventKind = "plan.partial"    // part of the target cannot be reached (Message: where and why); the plan reaches the rest
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
	EventJobAccepted      EventKind = "job.accepted"       // a job (or a new version of one) was stored
	EventJobRefused       EventKind = "job.refused"        // a job was refused (signature, started already, too many)
	EventJobStarted       EventKind = "job.started"        // a job's run started (an attempt)
	EventJobSucceeded     EventKind = "job.succeeded"
	EventJobFailed        EventKind = "job.failed"      // an attempt failed (Message: why; whether another follows)
	EventJobExpired       EventKind = "job.expired"     // not started by its deadline
	EventJobCanceled      EventKind = "job.canceled"    // by the operator, or a job it ran after ended badly
	EventJobInterrupted   EventKind = "job.interrupted" // it was running when the device stopped
	EventJobMissed        EventKind = "job.missed"      // a recurring job's runs did not start (device off, clock jump, window)
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
	// JobID names the fleet job (job.* events); Module and Job then name
	// the command it runs.
	JobID   string `json:"job_id,omitempty"`
	Message string `json:"message,omitempty"`
	// Truncated is true when the report says less than the event did:
	// its message or path was cut to fit a report, or the report is a
	// marker that stands in, with the same kind and seq, for an event too
	// large to send (or that could not be encoded, or that the broker
	// refused). The device's log keeps the whole event.
	Truncated bool `json:"truncated,omitempty"`
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
	// Unhandled lists target paths no loaded module senses or sets (at
	// most 16; Error says how many more). The device is not converged
	// while there are any: their values come from its store, not from
	// the hardware.
	Unhandled []string `json:"unhandled,omitempty"`
	// Unreached lists target paths the last plan left out because no job
	// could reach them (a partial plan; at most 16, Error says why for
	// each). The device is not converged while there are any, and plans
	// again with backoff.
	Unreached []string `json:"unreached,omitempty"`
	// MissingModules are configured modules that did not load, and why.
	MissingModules map[string]string `json:"missing_modules,omitempty"`
	// Rollouts says, for each rollout that governs a change this device
	// received (at most MaxRollouts, the newest), where the device is
	// with it (docs/rollouts.md).
	Rollouts map[string]RolloutStatus `json:"rollouts,omitempty"`
	// Layers names the conditional target layers active now
	// ("group/north/night", "device/pi-001/fan"), in the order they
	// apply over the target (docs/mqtt.md, "Layers").
	Layers []string `json:"layers,omitempty"`
	// LayerProblems says why layers can never be active on this device
	// as configured: a fact in their "when" the device does not know.
	LayerProblems []string `json:"layer_problems,omitempty"`
	// Agent is the inventory of the agent itself: its version, the
	// machine it runs on, its store and its resources (docs/observability.md).
	Agent *AgentInfo `json:"agent,omitempty"`
	// Facts describe the device for selection (tern inventory --where,
	// --where on the commands that take --group) and for target layers:
	// the facts of ternd.yaml and those the modules' sensors declare, at
	// most MaxFacts, each key and value at most MaxFactText bytes.
	Facts map[string]string `json:"facts,omitempty"`
	// Metrics summarises the agent's counters for a device that cannot be
	// scraped (behind NAT): the same numbers as its /metrics and textfile.
	Metrics *MetricsSummary `json:"metrics,omitempty"`
	// Plan is the plan the agent is running or last ran, as a graph.
	Plan *PlanGraph `json:"plan,omitempty"`
	// Truncated is true when the report leaves out what would not fit a
	// report (the state, then the other long fields): the device's log
	// keeps the whole status.
	Truncated bool `json:"truncated,omitempty"`
}

// Bounds on what a state report carries about the device.
const (
	MaxFacts       = 64 // facts in Status.Facts
	MaxFactText    = 64 // bytes in a fact's key or value (runtime/layer.CheckFact)
	MaxPlanTasks   = 64 // tasks in Status.Plan
	MaxMetricsKeys = 64 // keys in each map of Status.Metrics
)

// AgentInfo is the agent's inventory of itself, in the state report.
type AgentInfo struct {
	Version string `json:"version"`
	// Arch is the build's architecture: amd64, arm64, armv7, armv6, …
	Arch string `json:"arch"`
	// Board is the board's model (/proc/device-tree/model, or the
	// simulated board's name); empty when unknown.
	Board  string `json:"board,omitempty"`
	Kernel string `json:"kernel,omitempty"` // uname release
	// Started is when this ternd process started; Boot when the machine
	// did (zero when unknown).
	Started time.Time `json:"started"`
	Boot    time.Time `json:"boot,omitzero"`
	Store   string    `json:"store"` // the store backend: badger or bolt
	// DiskFree is the free bytes on the data directory's file system.
	DiskFree uint64 `json:"disk_free"`
	// OutboxDepth is how many event reports wait to be sent.
	OutboxDepth int `json:"outbox_depth"`
	// RSS is the process's resident memory in bytes.
	RSS uint64 `json:"rss"`
}

// MetricsSummary is the agent's counters since it started, in the state
// report. Map keys are bounded (MaxMetricsKeys); what does not fit is
// counted under "other".
type MetricsSummary struct {
	// Plans by outcome: found, partial, failed.
	Plans map[string]uint64 `json:"plans,omitempty"`
	// Tasks by "module.job" and outcome: "relay.switch done", "relay.switch failed".
	Tasks map[string]uint64 `json:"tasks,omitempty"`
	// Calls: module call time by module (count, sum and max in seconds).
	Calls         map[string]CallStats `json:"calls,omitempty"`
	Rollbacks     uint64               `json:"rollbacks,omitempty"`
	Refusals      uint64               `json:"refusals,omitempty"` // targets, modules, jobs refused
	Reconnects    uint64               `json:"reconnects,omitempty"`
	LastConverged time.Time            `json:"last_converged,omitzero"`
}

// CallStats sums module calls.
type CallStats struct {
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum_s"`
	Max   float64 `json:"max_s"`
}

// PlanGraph is a plan as a graph: its tasks and what each waits for.
type PlanGraph struct {
	TargetVersion uint64     `json:"target_version"`
	Tasks         []PlanTask `json:"tasks"`
	// More counts the tasks left out (over MaxPlanTasks).
	More int `json:"more,omitempty"`
}

// PlanTask is one node of a PlanGraph.
type PlanTask struct {
	ID     int    `json:"id"`
	Module string `json:"module"`
	Job    string `json:"job"`
	Path   string `json:"path,omitempty"`
	Deps   []int  `json:"deps,omitempty"` // IDs of the tasks it waits for
	// State is pending, running, done or failed.
	State string `json:"state"`
}

// NewEventID returns a random event id (Event.ID): 24 hex digits.
func NewEventID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Grants are the hardware a device gives a module, named as the board
// names them (ternd.yaml's modules[].grants; docs/configuration.md).
type Grants struct {
	// GPIO lines, e.g. "GPIO17", with the rate at which the module may
	// write each: "GPIO17@10/s" (or /m, /h: a minute, an hour); without
	// one, DefaultGPIORate. Relays and valves wear out, and a module in a
	// loop can write a line hundreds of thousands of times a second.
	GPIO []string `json:"gpio,omitempty" yaml:"gpio,omitempty"`
	// I2C devices as "bus:address", e.g. "i2c1:0x48".
	I2C []string `json:"i2c,omitempty" yaml:"i2c,omitempty"`
	// Serial ports, as "ttyS0" (any baud rate) or "ttyS0@9600" (that rate
	// only).
	Serial []string `json:"serial,omitempty" yaml:"serial,omitempty"`
}

// JobStatus is a device's report of one fleet job, retained per device
// and job (docs/jobs.md): where it is, why, and how its runs went.
type JobStatus struct {
	Time    time.Time `json:"time"`
	ID      string    `json:"id"`
	Scope   string    `json:"scope"` // device/<id>/job/<job> or group/<g>/job/<job>
	Version uint64    `json:"version"`
	Module  string    `json:"module"`
	Command string    `json:"command"`
	// Phase is one of queued, waiting, waiting_clock, waiting_dependency,
	// running, succeeded, failed, expired, canceled, interrupted.
	Phase   string          `json:"phase"`
	Why     string          `json:"why,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Next    time.Time       `json:"next,omitzero"` // when it is next looked at (its time, a retry)
	Started time.Time       `json:"started,omitzero"`
	Ended   time.Time       `json:"ended,omitzero"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   string          `json:"error,omitempty"`
	Missed  int             `json:"missed,omitempty"` // recurring runs that did not start
	Runs    []JobRun        `json:"runs,omitempty"`   // a recurring job's last runs, oldest first
}

// JobRun is one past run of a recurring job.
type JobRun struct {
	Scheduled time.Time `json:"scheduled,omitzero"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"`
	Phase     string    `json:"phase"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error,omitempty"`
}

// JobEnded reports whether a job in phase has ended: nothing more will
// happen to it.
func JobEnded(phase string) bool {
	switch phase {
	case "succeeded", "failed", "expired", "canceled", "interrupted":
		return true
	}
	return false
}

// MaxRollouts bounds the rollouts a status reports.
const MaxRollouts = 16

// RolloutPhase is where a device is with a rollout's change.
type RolloutPhase string

// Rollout phases (docs/rollouts.md).
const (
	RolloutWaiting   RolloutPhase = "waiting"   // its wave has not opened, or the rollout's control has not been heard on this connection
	RolloutHalted    RolloutPhase = "halted"    // the rollout is paused
	RolloutDeferred  RolloutPhase = "deferred"  // outside a maintenance window, or the device is busy
	RolloutApplying  RolloutPhase = "applying"  // handed to the agent; its outcome is not known yet
	RolloutSucceeded RolloutPhase = "succeeded" // applied: installed, or the target reached
	RolloutFailed    RolloutPhase = "failed"    // refused, rolled back, or the target not reached
	RolloutAborted   RolloutPhase = "aborted"   // the rollout was aborted before the device applied it
	RolloutReplaced  RolloutPhase = "replaced"  // a newer change for the same target or module came first
)

// RolloutStatus is a device's report of one rollout.
type RolloutStatus struct {
	// Wave is the device's wave, from 1.
	Wave  int          `json:"wave"`
	Phase RolloutPhase `json:"phase"`
	// What names the change ("module relay version 5").
	What string `json:"what,omitempty"`
	// Why says what the device waits for, or why it failed.
	Why   string    `json:"why,omitempty"`
	Since time.Time `json:"since"`
	// Applied is when the device let the change through (its wave open,
	// the rollout running, in a window and not busy), by its clock.
	Applied time.Time `json:"applied,omitzero"`
}

// Finished reports whether the phase is an outcome: succeeded or failed.
func (p RolloutPhase) Finished() bool { return p == RolloutSucceeded || p == RolloutFailed }
