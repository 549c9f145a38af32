package testbench

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tern-iot/tern/fleet"
)

// observer keeps what the devices reported through the broker: the
// latest state of each, when each first reported converged on each
// target version, and their events (deduplicated by Seq, as a consumer
// should: keep the highest, drop what is at or below it… here every Seq
// is kept so gaps show).
type observer struct {
	start  time.Time
	topics fleet.Topics

	mu      sync.Mutex
	devices map[string]*seen
	notable []Entry
}

type seen struct {
	state     fleet.StateReport
	hasState  bool
	converged map[uint64]time.Duration // target version → when first reported converged
	seqs      map[uint64]bool
	maxSeq    uint64
	dups      int
	// late counts reports that first arrived after a higher seq had (a
	// NATS broker redelivers a report its consumer did not acknowledge
	// after its ack wait, behind later ones); events keeps them in seq
	// order, as docs/mqtt.md tells consumers to.
	late int
	// epochs the device numbered its events under, in the order met; more
	// than one means its store was replaced mid-run.
	epochs []string
	events []gotEvent
	// convergedEvent: versions whose converged event is in the timeline
	// already (a thermostat converges again after every drift).
	convergedEvent map[uint64]bool
}

// gotEvent is an event report and when the observer got it (the event's
// own time is the device's clock, which a fault may have moved).
type gotEvent struct {
	fleet.EventReport
	at time.Duration
}

func newObserver(start time.Time, topics fleet.Topics) *observer {
	return &observer{start: start, topics: topics, devices: map[string]*seen{}}
}

// filters are the topics the observer needs.
func (o *observer) filters() []string {
	return []string{o.topics.State(fleet.AnyDevice), o.topics.Events(fleet.AnyDevice)}
}

func (o *observer) device(id string) *seen {
	s, ok := o.devices[id]
	if !ok {
		s = &seen{converged: map[uint64]time.Duration{}, seqs: map[uint64]bool{}}
		o.devices[id] = s
	}
	return s
}

// feed takes one message from the broker.
func (o *observer) feed(topic string, payload []byte) {
	if len(payload) == 0 {
		return
	}
	at := time.Since(o.start)
	switch {
	case strings.HasSuffix(topic, "/state"):
		r, err := fleet.ParseStateReport(payload)
		if err != nil {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		s := o.device(r.Device)
		s.state, s.hasState = r, true
		if r.Converged && r.TargetVersion > 0 {
			if _, ok := s.converged[r.TargetVersion]; !ok {
				s.converged[r.TargetVersion] = at
			}
		}
	case strings.HasSuffix(topic, "/events"):
		r, err := fleet.ParseEventReport(payload)
		if err != nil {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		s := o.device(r.Device)
		if r.Seq != 0 {
			if !slices.Contains(s.epochs, r.Epoch) {
				s.epochs = append(s.epochs, r.Epoch)
			}
			if s.seqs[r.Seq] {
				s.dups++
				return
			}
			s.seqs[r.Seq] = true
			if r.Seq < s.maxSeq {
				s.late++
			}
			s.maxSeq = max(s.maxSeq, r.Seq)
		}
		// In seq order: a late report goes before the higher ones.
		i := len(s.events)
		for r.Seq != 0 && i > 0 && s.events[i-1].Seq > r.Seq {
			i--
		}
		s.events = slices.Insert(s.events, i, gotEvent{r, at})
		first := true
		if r.Kind == "converged" {
			_, seenBefore := s.convergedEvent[r.TargetVersion]
			first = !seenBefore
			if s.convergedEvent == nil {
				s.convergedEvent = map[uint64]bool{}
			}
			s.convergedEvent[r.TargetVersion] = true
		}
		if first && notable(string(r.Kind)) {
			o.notable = append(o.notable, Entry{At: at, Device: r.Device, What: string(r.Kind), Detail: eventDetail(r)})
		}
	}
}

// notable events go into the report's timeline.
func notable(kind string) bool {
	switch kind {
	case "converged", "plan.failed", "plan.partial", "module.installed", "module.rolled_back", "module.refused", "target.refused", "events.dropped", "plan.resumed":
		return true
	}
	return false
}

func eventDetail(r fleet.EventReport) string {
	var parts []string
	if r.TargetVersion != 0 {
		parts = append(parts, fmt.Sprintf("v%d", r.TargetVersion))
	}
	if r.Module != "" {
		m := r.Module
		if r.Job != "" {
			m += "." + r.Job
		}
		parts = append(parts, m)
	}
	if r.Path != "" {
		parts = append(parts, r.Path)
	}
	if r.Message != "" {
		parts = append(parts, firstLine(r.Message))
	}
	return strings.Join(parts, " ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:157] + "…"
	}
	return s
}

// restarted forgets when the device converged: after a restart or a
// kill it has to report converged again. Called between the agent's end
// and its new start.
func (o *observer) restarted(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.device(id)
	s.converged = map[uint64]time.Duration{}
	s.convergedEvent = nil
}

// snapshot copies what is known of a device.
func (o *observer) snapshot(id string) seen {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.device(id)
	c := *s
	c.converged = map[uint64]time.Duration{}
	for k, v := range s.converged {
		c.converged[k] = v
	}
	c.events = slices.Clone(s.events)
	c.seqs = nil
	return c
}

// gaps lists the missing Seqs of a device, up to ten, and the epochs its
// events came under.
func (o *observer) gaps(id string) (missing []uint64, max uint64, dups, late int, epochs []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.device(id)
	for q := uint64(1); q <= s.maxSeq && len(missing) < 10; q++ {
		if !s.seqs[q] {
			missing = append(missing, q)
		}
	}
	return missing, s.maxSeq, s.dups, s.late, slices.Clone(s.epochs)
}

func (o *observer) entries() []Entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.notable)
}

// at reads a JSON Pointer in a state document.
func at(doc json.RawMessage, pointer string) (any, bool) {
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return nil, false
	}
	if pointer == "" || pointer == "/" {
		return v, true
	}
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return v, true
}
