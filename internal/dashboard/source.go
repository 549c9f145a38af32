package dashboard

import (
	"context"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/runtime/api"
)

// Source is what the dashboard shows: the fleet as the exporter keeps it.
// Its methods are safe for concurrent use.
type Source interface {
	// Devices returns every device known, sorted by id.
	Devices() []Device
	// Device returns one device.
	Device(id string) (Device, bool)
	// Events returns stored events that match q in the order stored
	// (each device's in seq order).
	Events(ctx context.Context, q EventQuery) ([]fleet.EventReport, error)
	// Changes sends the id of each device whose state, presence, jobs or
	// events change, until ctx is done. A slow reader may miss ids: it
	// reads Devices again when the channel says "" (overflowed).
	Changes(ctx context.Context) <-chan string
}

// Device is what is known of one device.
type Device struct {
	ID string
	// Online is the device's presence (its retained online message).
	Online bool
	// Seen is when the exporter last heard from it (state, event, presence).
	Seen time.Time
	// State is its latest state report; nil until one arrived.
	State *fleet.StateReport
	// Jobs are its job statuses, by job id.
	Jobs map[string]api.JobStatus
}

// EventQuery selects stored events. Zero fields select everything.
type EventQuery struct {
	Device string
	// Since and Until bound the event's own time (the device's clock).
	Since time.Time
	Until time.Time
	Kinds []string
	// Limit bounds how many are returned (the newest of those that
	// match); 0 means the Source's default.
	Limit int
}
