package runtime_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// flakyReporter refuses events until ok is set, as a reporter whose store
// failed does.
type flakyReporter struct {
	recorder
	ok atomic.Bool
}

func (f *flakyReporter) PublishEvent(ctx context.Context, e runtime.Event) error {
	if !f.ok.Load() {
		return errors.New("store: disk full")
	}
	return f.recorder.PublishEvent(ctx, e)
}

// An agent with nothing to sense sleeps until something is due (here the
// heartbeat, an hour away), but an event its reporter refused meanwhile,
// outside the loop, is tried again after a second, as when the loop ticked
// every second.
func TestIdleAgentRetriesARefusedEvent(t *testing.T) {
	st, err := backend.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep := &flakyReporter{}
	a, _ := runAgent(t, runtime.Options{Store: st, Reporter: rep, Logger: testLogger(t), Heartbeat: time.Hour})
	testbound.WaitFor(t, "the first step", func() bool { return a.Steps() > 0 })
	a.Refused(7, errors.New("bad envelope")) // refused by the reporter
	rep.ok.Store(true)
	testbound.WaitFor(t, "the refused event, sent again", func() bool {
		_, ok := rep.find(runtime.EventTargetRefused, "bad envelope")
		return ok
	})
}
