package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tern-iot/tern/runtime/store"
)

// How a device fetches the chunks of a chunked release (see chunks.go):
// one fetcher per connection takes the newest manifest wanted per module,
// subscribes to fetchWindow of the chunks it lacks at a time (each chunk's
// retained message comes on subscribing), keeps each chunk that matches
// its hash in the store, and unsubscribes. A connection lost mid-download
// ends the fetcher; the manifest comes again (retained) on the next one,
// and the fetcher asks only for what the store does not hold yet.

// fetchWindow is how many chunks are asked for at once: one. Everything
// the broker sends queues behind the chunks in flight, the answer to the
// client's keepalive ping too, and paho drops a connection whose ping is
// not answered within 10 s: at 256 kbit/s one 256 KiB chunk takes 8 s.
// Asking one at a time costs a round trip per chunk, a few per cent on a
// link with a long delay.
const fetchWindow = 1

// chunkStall is how long a fetch waits for a chunk it asked for before it
// asks again later: the chunk may not be published (yet), the link may be
// stalled, or a broker dropped it (it comes at QoS 0). At 256 kbit/s a
// chunk takes 8 s.
const chunkStall = 30 * time.Second

// chunkPrefix is where chunks are kept: chunk i of the release with
// SHA-256 S of K (module/<name> or agent/<arch>) under
// chunkPrefix+K+"/"+S+"/"+i (six digits). They stay after the release was
// put together, until a release of other code replaces them: after a
// restart the manifest comes again (retained), and the device puts the
// release together from its store, without the network, and offers it
// again (the agent ignores a release it has). Nothing on disk marks a
// release done, which a power cut between the mark and the agent's taking
// it could lose; within one run, Device.settled does.
const chunkPrefix = "fleet/chunk/"

type chunkMsg struct {
	topic string
	data  []byte
}

// fetchItem is a chunked release to fetch: a module's or ternd's.
type fetchItem struct {
	key     string // its scope: module/<name> or agent/<arch>
	version uint64
	sum     string // the SHA-256 its manifest names
	chunks  *Chunks
	total   int // bytes in chunks
	topic   func(i int) string
	// finish puts the release together from its chunks, checks it and
	// offers it; an error refuses it.
	finish  func(chunks [][]byte) error
	refusal Refusal // Topic, Module or Agent, for a refusal
}

func (it fetchItem) mark() string { return strconv.FormatUint(it.version, 10) + " " + it.sum }

// want records a chunked release to fetch. It runs on paho's delivery
// goroutine: it must not block.
func (d *Device) want(it fetchItem) {
	d.fetchMu.Lock()
	if d.settled[it.key] == it.mark() {
		// Offered already, or refused (its chunks do not make the code
		// it names, and asking again gets the same): the manifest comes
		// again with every connection, and putting an 8 MiB module or
		// 16 MiB agent release together from the store each time, to be
		// ignored, would cost a slow board seconds per reconnect.
		d.fetchMu.Unlock()
		return
	}
	if w, ok := d.wanted[it.key]; !ok || w.version < it.version || w.version == it.version && w.sum != it.sum {
		d.wanted[it.key] = it
	}
	d.fetchMu.Unlock()
	signal(d.fetchWake)
}

// onChunk takes a chunk for the fetcher, if it is one the fetcher asked
// for. It runs on paho's delivery goroutine: it must not block; a chunk
// that finds the queue full is dropped and asked for again.
func (d *Device) onChunk(_ paho.Client, m paho.Message) {
	d.fetchMu.Lock()
	_, asked := d.asked[m.Topic()]
	d.fetchMu.Unlock()
	if !asked {
		return
	}
	select {
	case d.chunkIn <- chunkMsg{m.Topic(), m.Payload()}:
	default:
	}
}

// fetch runs for one connection, until ctx ends: it downloads the wanted
// releases one at a time.
func (d *Device) fetch(ctx context.Context, c paho.Client) {
	d.fetchMu.Lock()
	stale := d.stale
	d.stale = nil
	d.fetchMu.Unlock()
	if len(stale) > 0 {
		unsub, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
		err := waitToken(unsub, c, c.Unsubscribe(stale...))
		cancel()
		if err != nil {
			d.fetchMu.Lock()
			d.stale = append(d.stale, stale...)
			d.fetchMu.Unlock()
		}
	}
	var failures int
	for {
		it, ok := d.nextWanted()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.fetchWake:
			}
			continue
		}
		err := d.download(ctx, c, it)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		delay := min(time.Duration(failures)*5*time.Second, time.Minute)
		d.log.Warn("fleet: fetching a chunked release failed; retrying", "release", it.key, "version", it.version, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-d.fetchWake: // a newer manifest
		case <-time.After(delay):
		}
	}
}

// nextWanted is a wanted release, if there is one.
func (d *Device) nextWanted() (fetchItem, bool) {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	for _, it := range d.wanted {
		return it, true
	}
	return fetchItem{}, false
}

// superseded reports whether a newer manifest replaced it.
func (d *Device) superseded(it fetchItem) bool {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	w, ok := d.wanted[it.key]
	return !ok || w.mark() != it.mark()
}

// done forgets it as wanted, unless a newer one came meanwhile.
func (d *Device) done(it fetchItem) {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	if w, ok := d.wanted[it.key]; ok && w.mark() == it.mark() {
		delete(d.wanted, it.key)
	}
}

func (it fetchItem) chunkKey(i int) []byte {
	return fmt.Appendf(nil, "%s%s/%s/%06d", chunkPrefix, it.key, it.sum, i)
}

// download fetches what the store lacks of the chunks, then has the
// release put together and offered.
func (d *Device) download(ctx context.Context, c paho.Client, it fetchItem) error {
	st := d.opts.Store
	d.deleteChunks(chunkPrefix+it.key+"/", chunkPrefix+it.key+"/"+it.sum+"/") // other code's
	n := len(it.chunks.SHA256)
	chunks := make([][]byte, n)
	var missing []int
	for i := range n {
		b, err := st.Get(it.chunkKey(i))
		if err == nil && it.chunks.check(i, b, it.total) == nil {
			chunks[i] = b
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		d.log.Info("fleet: fetching a chunked release", "release", it.key, "version", it.version,
			"bytes", it.total, "chunks", n, "missing", len(missing))
	}
	for len(missing) > 0 {
		if d.superseded(it) {
			return nil
		}
		w := missing[:min(fetchWindow, len(missing))]
		if err := d.fetchWindow(ctx, c, it, w, chunks); err != nil {
			return err
		}
		missing = missing[len(w):]
	}
	if err := it.finish(chunks); err != nil {
		// Chunks that match their hashes but not the signed whole: the
		// manifest itself is wrong. Asking again would get the same.
		d.deleteChunks(chunkPrefix+it.key+"/"+it.sum+"/", "")
		d.settle(it)
		r := it.refusal
		r.Err = err
		d.log.Warn("fleet: refusing a chunked release", "release", it.key, "version", it.version, "err", err)
		d.refuse(r)
		return nil
	}
	if len(missing) > 0 {
		d.log.Info("fleet: chunked release fetched", "release", it.key, "version", it.version)
	}
	d.settle(it)
	return nil
}

// settle records it as offered or refused in this process, and forgets
// it as wanted. After a restart the device puts it together from its
// store once more: the agent may not have stored it before the power went.
func (d *Device) settle(it fetchItem) {
	d.fetchMu.Lock()
	d.settled[it.key] = it.mark()
	d.fetchMu.Unlock()
	d.done(it)
}

// fetchWindow asks for the chunks in w and keeps each that arrives and
// matches its hash, in chunks and in the store.
func (d *Device) fetchWindow(ctx context.Context, c paho.Client, it fetchItem, w []int, chunks [][]byte) error {
	topics := make([]string, len(w))
	want := make(map[string]int, len(w))
	for j, i := range w {
		topics[j] = it.topic(i)
		want[topics[j]] = i
	}
	d.fetchMu.Lock()
	clear(d.asked)
	for _, topic := range topics {
		d.asked[topic] = struct{}{}
	}
	d.fetchMu.Unlock()
	defer func() {
		d.fetchMu.Lock()
		clear(d.asked)
		d.fetchMu.Unlock()
	}()
	// At QoS 0: a chunk lost with a connection is asked for again, while
	// at QoS 1 the broker would send it again first thing on the next
	// connection, where on a slow link it delays the answers the
	// connection's setup waits for (256 KiB take 8 s at 256 kbit/s) until
	// the device gives up on them and reconnects, for ever.
	sub, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	err := subscribeAt(sub, c, stateQoS, topics...)
	cancel()
	if err != nil {
		return fmt.Errorf("subscribe to its chunks: %w", err)
	}
	defer func() {
		unsub, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.ConnectTimeout)
		defer cancel()
		if err := waitToken(unsub, c, c.Unsubscribe(topics...)); err != nil {
			// The persistent session keeps them: unsubscribe on the
			// next connection, or a later release would send them.
			d.fetchMu.Lock()
			d.stale = append(d.stale, topics...)
			d.fetchMu.Unlock()
		}
	}()
	stall := time.NewTimer(chunkStall)
	defer stall.Stop()
	for len(want) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stall.C:
			first := slicesMin(want)
			return fmt.Errorf("chunk %d (of %d) did not come within %v; is it published on %s?", first, len(it.chunks.SHA256), chunkStall, it.topic(first))
		case m := <-d.chunkIn:
			i, ok := want[m.topic]
			if !ok {
				continue
			}
			if err := it.chunks.check(i, m.data, it.total); err != nil {
				if d.superseded(it) {
					return nil
				}
				// A newer release's chunk, before its manifest; or
				// damage. The stall bound ends the wait if it lasts.
				d.log.Debug("fleet: chunk refused", "topic", m.topic, "err", err)
				continue
			}
			if err := d.opts.Store.Put(it.chunkKey(i), m.data); err != nil {
				return fmt.Errorf("keep chunk %d: %w", i, err)
			}
			chunks[i] = m.data
			delete(want, m.topic)
			stall.Reset(chunkStall)
		}
	}
	return nil
}

func slicesMin(m map[string]int) int {
	first := -1
	for _, i := range m {
		if first < 0 || i < first {
			first = i
		}
	}
	return first
}

// deleteChunks deletes the keys under prefix, but those under keep.
func (d *Device) deleteChunks(prefix, keep string) {
	var keys [][]byte
	err := d.opts.Store.Scan([]byte(prefix), func(k, _ []byte) error {
		if keep == "" || !bytes.HasPrefix(k, []byte(keep)) {
			keys = append(keys, bytes.Clone(k))
		}
		return nil
	})
	for _, k := range keys {
		err = errors.Join(err, d.opts.Store.Delete(k))
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		d.log.Warn("fleet: cannot delete the chunks of an old download", "prefix", strings.TrimPrefix(prefix, chunkPrefix), "err", err)
	}
}
