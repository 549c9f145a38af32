package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/runtime/api"
)

// Defaults of Options.
const (
	DefaultRetain    = 720 * time.Hour
	DefaultMaxEvents = 1_000_000
	// DefaultMaxDevices is Options.MaxDevices's default.
	DefaultMaxDevices = 100_000
)

// maxJobsPerDevice bounds the job statuses kept per device (the newest).
const maxJobsPerDevice = 256

// Options configures an Exporter.
type Options struct {
	// Operator says how to reach the broker: Broker, TLS, Topics,
	// Username and Password. Its Session is the exporter's persistent
	// session, "tern-exporter-<fleet>" if empty.
	Operator fleet.OperatorOptions
	// DataDir holds the event history (events.db); created if missing.
	DataDir string
	// Retain is how long an event is kept after it was received
	// (DefaultRetain if 0; negative keeps events until MaxEvents).
	Retain time.Duration
	// MaxEvents bounds the events kept: past it, the oldest go
	// (DefaultMaxEvents if 0).
	MaxEvents int
	// MaxDevices bounds the devices kept in memory (DefaultMaxDevices if
	// 0): reports from a device beyond it are not kept (events are still
	// stored), said once in the log and counted in
	// tern_exporter_devices_refused_total. A fleet's topics take any
	// device id, and each kept device holds its latest state report.
	MaxDevices int
	// Logger receives what the exporter does; nil discards it.
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Exporter follows a fleet through the broker and keeps what it
// reports: the event history on disk, the latest state, presence and job
// statuses of each device in memory. It is a dashboard.Source, and
// serves Prometheus metrics and the history over HTTP (Handler). Its
// methods are safe for concurrent use.
type Exporter struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	hist *history
	op   *fleet.Operator

	life         context.Context // done at Close
	cancel       context.CancelFunc
	disconnected chan struct{} // closed at Close once the connection is gone
	wg           sync.WaitGroup

	// storeMu guards the history against Close while an event is stored.
	storeMu   sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
	failed    chan struct{} // closed when storing failed: Err says why
	failOnce  sync.Once
	err       atomic.Pointer[error]

	dups    atomic.Uint64 // copies dropped, since start
	refused atomic.Uint64 // reports of devices over MaxDevices, since start

	mu      sync.Mutex
	devices map[string]*deviceEntry

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
}

var _ dashboard.Source = (*Exporter)(nil)

type deviceEntry struct {
	online bool
	seen   time.Time
	state  *fleet.StateReport
	jobs   map[string]api.JobStatus
}

// Start opens the history in opts.DataDir, connects to the broker with
// the persistent session and follows the fleet until Close.
func Start(ctx context.Context, opts Options) (*Exporter, error) {
	if opts.DataDir == "" {
		return nil, errors.New("exporter: no data directory; give one for the event history (--data DIR)")
	}
	if opts.Retain == 0 {
		opts.Retain = DefaultRetain
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.MaxDevices == 0 {
		opts.MaxDevices = DefaultMaxDevices
	}
	if opts.MaxDevices < 0 {
		return nil, fmt.Errorf("exporter: MaxDevices %d: must be 0 (the default, %d) or more", opts.MaxDevices, DefaultMaxDevices)
	}
	if opts.MaxEvents < 0 {
		return nil, fmt.Errorf("exporter: MaxEvents %d: must be 0 (the default, %d) or more", opts.MaxEvents, DefaultMaxEvents)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Operator.Session == "" {
		opts.Operator.Session = DefaultSession(opts.Operator.Topics.Fleet)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Operator.Logger == nil {
		opts.Operator.Logger = log
	}
	h, err := openHistory(opts.DataDir, opts.Retain, opts.MaxEvents)
	if err != nil {
		return nil, err
	}
	e := &Exporter{
		opts: opts, log: log, now: opts.Now, hist: h,
		failed:       make(chan struct{}),
		disconnected: make(chan struct{}),
		devices:      map[string]*deviceEntry{},
		subs:         map[*subscriber]struct{}{},
	}
	if _, err := h.prune(e.now()); err != nil {
		h.close()
		return nil, err
	}
	op, err := fleet.DialOperator(ctx, opts.Operator)
	if err != nil {
		h.close()
		return nil, err
	}
	e.op = op
	life, cancel := context.WithCancel(context.Background())
	e.life, e.cancel = life, cancel
	// Events first: the broker sends what it queued for the session at
	// once, and the Operator holds it for FollowEvents.
	if err := op.FollowEvents(ctx, fleet.AnyDevice, e.onEvent); err != nil {
		e.Close()
		return nil, err
	}
	states, err := op.WatchStates(life, fleet.AnyDevice)
	if err == nil {
		var online <-chan fleet.Presence
		online, err = op.WatchOnline(life, fleet.AnyDevice)
		if err == nil {
			var jobs <-chan fleet.JobStatusReport
			jobs, err = op.WatchJobStatuses(life, fleet.AnyDevice)
			if err == nil {
				e.wg.Go(func() { e.follow(life, states, online, jobs) })
			}
		}
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	e.wg.Go(func() { e.pruneEvery(life) })
	log.Info("exporter: following the fleet", "fleet", opts.Operator.Topics.Fleet, "session", opts.Operator.Session, "data", opts.DataDir)
	return e, nil
}

// DefaultSession is the persistent session of the exporter of fleet.
func DefaultSession(fleetName string) string {
	if fleetName == "" {
		fleetName = "default"
	}
	s := "tern-exporter-" + fleetName
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// Failed is closed when the exporter cannot store an event (the disk is
// full or failing); Err says why. The exporter then stops taking events,
// so the broker keeps them queued for its next start.
func (e *Exporter) Failed() <-chan struct{} { return e.failed }

// Err is why Failed closed; nil before.
func (e *Exporter) Err() error {
	if p := e.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops following, disconnects (the broker keeps the session and
// queues events for it) and closes the history.
func (e *Exporter) Close() error {
	e.closeOnce.Do(func() {
		if e.cancel != nil {
			e.cancel()
		}
		if e.op != nil {
			e.op.Close()
		}
		close(e.disconnected)
		e.wg.Wait()
		e.storeMu.Lock()
		e.closed = true
		e.storeMu.Unlock()
		e.subMu.Lock()
		for s := range e.subs {
			s.stop()
		}
		e.subMu.Unlock()
		e.closeErr = e.hist.close()
	})
	return e.closeErr
}

// onEvent stores one event report; it runs before the broker's
// acknowledgement (fleet.Operator.FollowEvents), so an event stored is
// acknowledged and one not stored comes again.
func (e *Exporter) onEvent(r fleet.EventReport) {
	e.storeMu.RLock()
	if e.closed {
		e.storeMu.RUnlock()
		return // not acknowledged: the connection is closed
	}
	select {
	case <-e.failed:
		e.storeMu.RUnlock()
		<-e.disconnected // hold the acknowledgement until the connection is gone
		return
	default:
	}
	stored, err := e.hist.add(r, e.now())
	e.storeMu.RUnlock()
	if err != nil {
		e.log.Error("exporter: cannot store an event; stopping (the broker keeps the rest queued)", "device", r.Device, "seq", r.Seq, "err", err)
		e.failOnce.Do(func() {
			e.err.Store(&err)
			close(e.failed)
		})
		<-e.disconnected
		return
	}
	if !stored {
		e.dups.Add(1)
		return
	}
	e.touch(r.Device, func(d *deviceEntry) { d.seen = later(d.seen, capNow(r.Time, e.now())) })
}

// follow applies state reports, presence and job statuses until ctx is
// done or a watch ends.
func (e *Exporter) follow(ctx context.Context, states <-chan fleet.StateReport, online <-chan fleet.Presence, jobs <-chan fleet.JobStatusReport) {
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-states:
			if !ok {
				return
			}
			e.touch(s.Device, func(d *deviceEntry) {
				d.state = &s
				d.seen = later(d.seen, capNow(s.Time, e.now()))
			})
		case p, ok := <-online:
			if !ok {
				return
			}
			e.touch(p.Device, func(d *deviceEntry) { d.online = p.Online })
		case j, ok := <-jobs:
			if !ok {
				return
			}
			e.touch(j.Device, func(d *deviceEntry) {
				if d.jobs == nil {
					d.jobs = map[string]api.JobStatus{}
				}
				d.jobs[j.ID] = j.JobStatus
				if len(d.jobs) > maxJobsPerDevice {
					oldest := ""
					for id, s := range d.jobs {
						if oldest == "" || s.Time.Before(d.jobs[oldest].Time) {
							oldest = id
						}
					}
					delete(d.jobs, oldest)
				}
			})
		}
	}
}

func capNow(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// touch changes device id's entry under the lock and tells the
// subscribers.
func (e *Exporter) touch(id string, change func(*deviceEntry)) {
	e.mu.Lock()
	d := e.devices[id]
	if d == nil {
		if len(e.devices) >= e.opts.MaxDevices {
			e.mu.Unlock()
			if e.refused.Add(1) == 1 {
				e.log.Warn("exporter: more devices than --max-devices; the reports of those beyond it are not kept (their events are)", "max_devices", e.opts.MaxDevices, "device", id)
			}
			return
		}
		d = &deviceEntry{}
		e.devices[id] = d
	}
	change(d)
	e.mu.Unlock()
	e.notify(id)
}

// pruneEvery prunes the history of events older than Retain.
func (e *Exporter) pruneEvery(ctx context.Context) {
	every := min(max(e.opts.Retain/100, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.storeMu.RLock()
			if !e.closed {
				if n, err := e.hist.prune(e.now()); err != nil {
					e.log.Error("exporter: prune", "err", err)
				} else if n > 0 {
					e.log.Debug("exporter: pruned old events", "events", n)
				}
			}
			e.storeMu.RUnlock()
		}
	}
}

// Devices returns every device known, sorted by id.
func (e *Exporter) Devices() []dashboard.Device {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]dashboard.Device, 0, len(e.devices))
	for _, id := range slices.Sorted(maps.Keys(e.devices)) {
		out = append(out, e.deviceLocked(id))
	}
	return out
}

// Device returns one device.
func (e *Exporter) Device(id string) (dashboard.Device, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.devices[id]; !ok {
		return dashboard.Device{}, false
	}
	return e.deviceLocked(id), true
}

func (e *Exporter) deviceLocked(id string) dashboard.Device {
	d := e.devices[id]
	out := dashboard.Device{ID: id, Online: d.online, Seen: d.seen, Jobs: maps.Clone(d.jobs)}
	if d.state != nil {
		s := *d.state
		out.State = &s
	}
	return out
}

// Events returns stored events that match q in the order stored: each
// device's in seq order, a late one just before the next of its device.
func (e *Exporter) Events(ctx context.Context, q dashboard.EventQuery) ([]fleet.EventReport, error) {
	out, _, err := e.events(ctx, q)
	return out, err
}

func (e *Exporter) events(ctx context.Context, q dashboard.EventQuery) ([]fleet.EventReport, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	e.storeMu.RLock()
	defer e.storeMu.RUnlock()
	if e.closed {
		return nil, false, errors.New("exporter: closed")
	}
	return e.hist.query(q)
}

// subscriber is one Changes reader.
type subscriber struct {
	ch   chan string
	over bool // a send found ch full: "" is owed
	once sync.Once
}

func (s *subscriber) stop() { s.once.Do(func() { close(s.ch) }) }

// changesQueue is how many changed ids a slow Changes reader may hold.
const changesQueue = 1024

// Changes sends the id of each device whose state, presence, jobs or
// events change, until ctx is done. A reader that falls behind misses
// ids and then gets "": read Devices again.
func (e *Exporter) Changes(ctx context.Context) <-chan string {
	s := &subscriber{ch: make(chan string, changesQueue)}
	e.subMu.Lock()
	e.subs[s] = struct{}{}
	e.subMu.Unlock()
	e.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-e.life.Done():
		}
		e.subMu.Lock()
		delete(e.subs, s)
		s.stop()
		e.subMu.Unlock()
	})
	return s.ch
}

func (e *Exporter) notify(id string) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	for s := range e.subs {
		if s.over {
			select {
			case s.ch <- "":
				s.over = false
			default:
				continue
			}
		}
		select {
		case s.ch <- id:
		default:
			s.over = true
		}
	}
}
