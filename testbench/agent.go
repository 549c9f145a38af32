package testbench

import "context"

// Agent is one ternd under test. The runner needs only this; what a
// fault needs beyond it is an optional ability, found by type assertion
// (Boarded for the simulated hardware, network and clock). InProcess runs
// ternd in the testbench's process; an agent run as a separate ternd
// process implements the same interface.
type Agent interface {
	// ID is the agent's device id.
	ID() string
	// Start starts the agent; it returns once the agent runs.
	Start(ctx context.Context) error
	// Stop stops it and waits until it has; the error is how it ended.
	Stop() error
	// Restart stops the agent abruptly (as abruptly as the
	// implementation can: a process is killed with SIGKILL) and starts it
	// again on the same data and board.
	Restart(ctx context.Context) error
}

// Boarded is an Agent whose simulated board the testbench can reach:
// hardware faults, the room, buttons, its network link and clock.
type Boarded interface {
	Agent
	Board() *Board
}

// Killer is an Agent that can lose its power: Kill ends it at once, as
// SIGKILL ends a process, with no chance to flush or close anything. A
// ProcessAgent is one; an InProcess agent is not (its ternd shares the
// testbench's process), so kill steps stop it cleanly instead.
type Killer interface {
	Agent
	Kill() error
}

var _ Killer = (*ProcessAgent)(nil)
