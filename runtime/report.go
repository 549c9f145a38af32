package runtime

import "github.com/tern-iot/tern/runtime/api"

// The agent's reports are package api's types, so that the fleet contract
// and tools that read it need not link the agent.
type (
	EventKind = api.EventKind
	Event     = api.Event
	Phase     = api.Phase
	Status    = api.Status
)

// Event kinds and phases: see package api.
const (
	EventTargetAccepted   = api.EventTargetAccepted
	EventTargetRefused    = api.EventTargetRefused
	EventPlanFound        = api.EventPlanFound
	EventPlanFailed       = api.EventPlanFailed
	EventPlanPartial      = api.EventPlanPartial
	EventReplan           = api.EventReplan
	EventPlanResumed      = api.EventPlanResumed
	EventTaskStarted      = api.EventTaskStarted
	EventTaskDone         = api.EventTaskDone
	EventTaskFailed       = api.EventTaskFailed
	EventConverged        = api.EventConverged
	EventDrift            = api.EventDrift
	EventModuleError      = api.EventModuleError
	EventModuleRolledBack = api.EventModuleRolledBack
	EventModuleInstalled  = api.EventModuleInstalled
	EventModuleRefused    = api.EventModuleRefused
	EventReportsDropped   = api.EventReportsDropped
	PhaseIdle             = api.PhaseIdle
	PhasePlanning         = api.PhasePlanning
	PhaseRunning          = api.PhaseRunning
	PhaseFailed           = api.PhaseFailed
)

// NewEventID returns a random event id (Event.ID): 24 hex digits.
func NewEventID() string { return api.NewEventID() }
