package fleet

import (
	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxPendingControls bounds the rollout controls received and not yet
// taken (TakeRolloutControls): the broker sends every retained one with
// each connection, and a consumer takes them at once; beyond the bound a
// control is dropped, and comes again with the next connection.
const maxPendingControls = 1024

// ReceivedControl is a rollout control as the device received it: parsed,
// made for this fleet, not verified (the consumer holds the trust store);
// Conn is the connection it came on (see Connection).
type ReceivedControl struct {
	RolloutControl
	Conn uint64
}

// Connection returns the number of the current (or last) connection, which
// grows with each, and whether it is up: a rollout's control heard on
// connection n says nothing of what was published while the device was
// away, so a consumer compares a control's Conn with it.
func (d *Device) Connection() (n uint64, up bool) { return d.conns.Load(), d.Connected() }

// RolloutsWaiting is signalled when rollout controls arrive, and when a
// connection is set up or lost; TakeRolloutControls takes the controls.
func (d *Device) RolloutsWaiting() <-chan struct{} { return d.ctlWake }

// TakeRolloutControls returns the controls received since the last call,
// the highest version of each rollout. Expect redelivery with every
// connection.
func (d *Device) TakeRolloutControls() []ReceivedControl {
	d.ctlMu.Lock()
	defer d.ctlMu.Unlock()
	out := make([]ReceivedControl, 0, len(d.ctlPending))
	for _, c := range d.ctlPending {
		out = append(out, c)
	}
	clear(d.ctlPending)
	return out
}

// onRolloutControl runs on paho's delivery goroutine: it must not block.
func (d *Device) onRolloutControl(_ paho.Client, m paho.Message) {
	if len(m.Payload()) == 0 {
		return // a rollout's control removed from the broker
	}
	c, err := ParseRolloutControl(m.Payload())
	if err == nil {
		err = c.CheckTopics(d.opts.Topics)
	}
	if err == nil && m.Topic() != d.opts.Topics.Rollout(c.Rollout) {
		err = newError(ErrMalformed, nil, "fleet: control of rollout %s arrived on %s, the topic of another rollout; publish it with tern rollout", c.Rollout, m.Topic())
	}
	if err != nil {
		// Not a refusal event: the rollout may govern nothing this device
		// runs; whatever it governs waits for a good control.
		d.log.Warn("fleet: ignoring rollout control", "topic", m.Topic(), "err", err)
		return
	}
	rc := ReceivedControl{RolloutControl: c, Conn: d.conns.Load()}
	d.ctlMu.Lock()
	held, ok := d.ctlPending[c.Rollout]
	switch {
	case ok && held.Version > c.Version && held.Conn == rc.Conn:
	case !ok && len(d.ctlPending) >= maxPendingControls:
		d.ctlMu.Unlock()
		d.log.Warn("fleet: too many rollout controls waiting; dropped, it comes again with the next connection", "topic", m.Topic())
		return
	default:
		d.ctlPending[c.Rollout] = rc
	}
	d.ctlMu.Unlock()
	signal(d.ctlWake)
}
