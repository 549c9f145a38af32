package dashboard

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The live stream, api/stream, is Server-Sent Events. Each event's data is
// one line of JSON:
//
//	event: ready    data: {}          subscribed: read everything again, then apply what follows
//	event: device   data: Row         a device changed: its new row
//	event: gone     data: {"id":…}    a device is no longer known
//	event: reload   data: {}          too much changed to say: read everything again
//
// Changes that arrive within Options.Interval of the last update are sent
// together, each device once, so a burst costs a client a few updates a
// second whatever its size.

func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	if n := h.clients.Add(1); n > int64(h.opts.MaxClients) {
		h.clients.Add(-1)
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "dashboard: "+strconv.Itoa(h.opts.MaxClients)+
			" live clients are connected already, the most allowed (Options.MaxClients); close a dashboard tab or try again later")
		return
	}
	defer h.clients.Add(-1)
	ctx := r.Context()
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // a kept-alive connection's next request starts afresh
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout)) // not every ResponseWriter supports it
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	changes := h.src.Changes(ctx) // before ready: nothing after it is missed
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if !write([]byte("retry: 3000\n\nevent: ready\ndata: {}\n\n")) {
		return
	}

	pending := map[string]struct{}{}
	reload := false
	var flush <-chan time.Time // set while changes wait to be sent
	var last time.Time         // when the last update was sent
	idle := time.NewTicker(keepalive)
	defer idle.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-changes:
			if !ok {
				return // the Source stopped; the browser reconnects
			}
			switch {
			case reload:
			case id == "" || len(pending) >= maxPending:
				reload = true
				clear(pending)
			default:
				pending[id] = struct{}{}
			}
			if flush == nil {
				flush = time.After(max(h.opts.Interval-time.Since(last), 0))
			}
		case <-flush:
			flush = nil
			buf.Reset()
			h.update(&buf, pending, reload)
			clear(pending)
			reload = false
			if !write(buf.Bytes()) {
				return
			}
			last = time.Now()
		case <-idle.C:
			if !write([]byte(": keepalive\n\n")) {
				return
			}
		}
	}
}

// update writes the events for one batch of changes.
func (h *handler) update(buf *bytes.Buffer, ids map[string]struct{}, reload bool) {
	if reload {
		buf.WriteString("event: reload\ndata: {}\n\n")
		return
	}
	now := h.opts.Now()
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		var b []byte
		event := "device"
		if d, ok := h.src.Device(id); ok {
			b, _ = json.Marshal(RowOf(d, now))
		} else {
			event = "gone"
			b, _ = json.Marshal(struct {
				ID string `json:"id"`
			}{id})
		}
		// json.Marshal escapes newlines in strings: data is one line.
		buf.WriteString("event: " + event + "\ndata: ")
		buf.Write(b)
		buf.WriteString("\n\n")
	}
}
