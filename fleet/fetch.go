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

// chunkPrefix is where chunks are kept: chunk i of the code with SHA-256
// S of module M under chunkPrefix+M+"/"+S+"/"+i (six digits). They stay
// after the release was put together, until a release of other code
// replaces them: the manifest comes again (retained) with every
// connection, and the device then puts the release together from its
// store, without the network, and offers it again (the agent ignores a
// release it has). Nothing marks a release done, which a power cut
// between the mark and the agent's taking it could lose.
const chunkPrefix = "fleet/chunk/"

type chunkMsg struct {
	topic string
	data  []byte
}

// onManifest records a chunked release to fetch. It runs on paho's
// delivery goroutine: it must not block.
func (d *Device) onManifest(env ReleaseEnvelope) {
	d.fetchMu.Lock()
	if d.refused[env.Module] == fetchedMark(env) {
		d.fetchMu.Unlock()
		return // its chunks do not make the code it names; asking again gets the same
	}
	if w, ok := d.wanted[env.Module]; !ok || w.Version < env.Version || w.Version == env.Version && w.SHA256 != env.SHA256 {
		d.wanted[env.Module] = env
	}
	d.fetchMu.Unlock()
	signal(d.fetchWake)
}

// onChunk takes a chunk for the fetcher, if it is one the fetcher asked
// for: a persistent session sends again what was in flight when a
// connection was lost, which must not crowd out the chunk asked for. It
// runs on paho's delivery goroutine: it must not block; a chunk that
// finds the queue full (it holds what the fetcher asked for, twice) is
// dropped and asked for again.
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

func fetchedMark(env ReleaseEnvelope) string {
	return strconv.FormatUint(env.Version, 10) + " " + env.SHA256
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
		env, ok := d.nextWanted()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-d.fetchWake:
			}
			continue
		}
		err := d.download(ctx, c, env)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		delay := min(time.Duration(failures)*5*time.Second, time.Minute)
		d.log.Warn("fleet: fetching a chunked release failed; retrying", "module", env.Module, "version", env.Version, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-d.fetchWake: // a newer manifest
		case <-time.After(delay):
		}
	}
}

// nextWanted is a wanted release, if there is one.
func (d *Device) nextWanted() (ReleaseEnvelope, bool) {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	for _, env := range d.wanted {
		return env, true
	}
	return ReleaseEnvelope{}, false
}

// superseded reports whether a newer manifest replaced env.
func (d *Device) superseded(env ReleaseEnvelope) bool {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	w, ok := d.wanted[env.Module]
	return !ok || w.Version != env.Version || w.SHA256 != env.SHA256
}

// done forgets env as wanted, unless a newer one came meanwhile.
func (d *Device) done(env ReleaseEnvelope) {
	d.fetchMu.Lock()
	defer d.fetchMu.Unlock()
	if w, ok := d.wanted[env.Module]; ok && w.Version == env.Version && w.SHA256 == env.SHA256 {
		delete(d.wanted, env.Module)
	}
}

func chunkKey(env ReleaseEnvelope, i int) []byte {
	return fmt.Appendf(nil, "%s%s/%s/%06d", chunkPrefix, env.Module, env.SHA256, i)
}

// download fetches what the store lacks of env's chunks, then puts the
// code together and offers the release.
func (d *Device) download(ctx context.Context, c paho.Client, env ReleaseEnvelope) error {
	st := d.opts.Store
	d.dropOtherChunks(env)
	n := len(env.Chunks.SHA256)
	chunks := make([][]byte, n)
	var missing []int
	for i := range n {
		b, err := st.Get(chunkKey(env, i))
		if err == nil && env.CheckChunk(i, b) == nil {
			chunks[i] = b
		} else {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		d.log.Info("fleet: fetching a chunked release", "module", env.Module, "version", env.Version,
			"size", env.Size, "chunks", n, "missing", len(missing))
	}
	for len(missing) > 0 {
		if d.superseded(env) {
			return nil
		}
		w := missing[:min(fetchWindow, len(missing))]
		if err := d.fetchWindow(ctx, c, env, w, chunks); err != nil {
			return err
		}
		missing = missing[len(w):]
	}
	whole, err := env.Join(chunks)
	if err != nil {
		// Chunks that match their hashes but not the signed whole: the
		// manifest itself is wrong. Asking again would get the same.
		d.dropChunks(env)
		d.fetchMu.Lock()
		d.refused[env.Module] = fetchedMark(env)
		d.fetchMu.Unlock()
		d.done(env)
		d.log.Warn("fleet: refusing module release", "module", env.Module, "version", env.Version, "err", err)
		d.refuse(Refusal{Topic: d.opts.Topics.Module(env.Module), Module: env.Module, Err: err})
		return nil
	}
	if len(missing) > 0 {
		d.log.Info("fleet: chunked release fetched", "module", env.Module, "version", env.Version, "size", env.Size)
	}
	d.offerRelease(whole)
	d.done(env)
	return nil
}

// fetchWindow asks for the chunks in w and keeps each that arrives and
// matches its hash, in chunks and in the store.
func (d *Device) fetchWindow(ctx context.Context, c paho.Client, env ReleaseEnvelope, w []int, chunks [][]byte) error {
	topics := make([]string, len(w))
	want := make(map[string]int, len(w))
	for j, i := range w {
		topics[j] = d.opts.Topics.ModuleChunk(env.Module, i)
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
	err := subscribeAt(sub, c, 0, topics...)
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
			return fmt.Errorf("chunk %d (of %d) did not come within %v; is it published on %s?", first, len(env.Chunks.SHA256), chunkStall, d.opts.Topics.ModuleChunk(env.Module, first))
		case m := <-d.chunkIn:
			i, ok := want[m.topic]
			if !ok {
				continue // a chunk of an earlier window, again
			}
			if err := env.CheckChunk(i, m.data); err != nil {
				if d.superseded(env) {
					return nil
				}
				// A newer release's chunk, before its manifest; or
				// damage. The stall bound ends the wait if it lasts.
				d.log.Debug("fleet: chunk refused", "topic", m.topic, "err", err)
				continue
			}
			if err := d.opts.Store.Put(chunkKey(env, i), m.data); err != nil {
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

// dropChunks deletes env's chunks from the store.
func (d *Device) dropChunks(env ReleaseEnvelope) {
	d.deleteChunks(chunkPrefix+env.Module+"/"+env.SHA256+"/", "")
}

// dropOtherChunks deletes the chunks of env's module that belong to other
// code: a download that a newer release replaced.
func (d *Device) dropOtherChunks(env ReleaseEnvelope) {
	d.deleteChunks(chunkPrefix+env.Module+"/", chunkPrefix+env.Module+"/"+env.SHA256+"/")
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
