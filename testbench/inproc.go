package testbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tern-iot/tern/internal/daemon"
)

// InProcess is an Agent that runs ternd (daemon.Run) in the testbench's
// process, on a simulated Board. Restart cancels it and runs it again on
// the same data directory and board: the store is closed cleanly, so this
// is a reboot, not a power cut (a process agent is killed with SIGKILL).
type InProcess struct {
	cfg   daemon.Config
	board *Board
	log   *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

var _ Boarded = (*InProcess)(nil)

// NewInProcess prepares an agent with cfg on board; log receives ternd's
// log.
func NewInProcess(cfg daemon.Config, board *Board, log *slog.Logger) *InProcess {
	return &InProcess{cfg: cfg, board: board, log: log}
}

// ID implements Agent.
func (a *InProcess) ID() string { return a.cfg.Device }

// Board implements Boarded.
func (a *InProcess) Board() *Board { return a.board }

// Start implements Agent.
func (a *InProcess) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		return fmt.Errorf("testbench: agent %s is already running", a.cfg.Device)
	}
	if err := a.cfg.Validate(); err != nil {
		return fmt.Errorf("testbench: agent %s: %w", a.cfg.Device, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, a.cfg, a.board.hardware(), a.log) }()
	a.cancel, a.done = cancel, done
	return nil
}

// Stop implements Agent.
func (a *InProcess) Stop() error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("testbench: agent %s: %w", a.cfg.Device, err)
	}
	return nil
}

// Restart implements Agent.
func (a *InProcess) Restart(ctx context.Context) error {
	if err := a.Stop(); err != nil {
		return err
	}
	return a.Start(ctx)
}
