package wasmhost

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRefusalReports(t *testing.T) {
	const every = time.Minute
	var w watch
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// The first refusal is reported at once.
	if p, due := w.note(gpioNotGranted, "GPIO22", at(0), every); !due || !p.first || p.name != "GPIO22" {
		t.Fatalf("first refusal: %+v, %v", p, due)
	}
	// Later ones in the interval are counted, not reported; another class
	// is reported apart.
	for i := range 1000 {
		if _, due := w.note(gpioNotGranted, fmt.Sprint("X", i%5), at(time.Second), every); due {
			t.Fatalf("refusal %d reported inside the interval", i)
		}
	}
	if p, due := w.note(i2cNotGranted, "i2c1:0x50", at(2*time.Second), every); !due || !p.first {
		t.Fatalf("the first refusal of another class: %+v, %v", p, due)
	}
	if ps := w.due(at(every-time.Nanosecond), every); len(ps) != 0 {
		t.Fatalf("summaries before the interval ended: %+v", ps)
	}
	// At the end of the interval, one summary with the count.
	ps := w.due(at(every), every)
	if len(ps) != 1 || ps[0].first || ps[0].count != 1000 || ps[0].since != every || !ps[0].more ||
		strings.Join(ps[0].samples, ",") != "X0,X1,X2" {
		t.Fatalf("summary = %+v", ps)
	}
	if ps := w.due(at(10*every), every); len(ps) != 0 {
		t.Fatalf("summaries with nothing counted: %+v", ps)
	}
	// A refusal after a quiet interval is a first one again.
	if p, due := w.note(gpioNotGranted, "GPIO22", at(12*every), every); !due || !p.first {
		t.Fatalf("after a quiet interval: %+v, %v", p, due)
	}
	// One counted in the interval, and the next refusal after it brings
	// the summary with it, counting itself.
	w.note(gpioNotGranted, "GPIO22", at(12*every+time.Second), every)
	if p, due := w.note(gpioNotGranted, "GPIO22", at(13*every), every); !due || p.first || p.count != 2 || p.more || len(p.samples) != 1 {
		t.Fatalf("the refusal after the interval: %+v, %v", p, due)
	}
	// A clock read before another goroutine's (callers read it before the
	// lock) counts, and reports nothing.
	if _, due := w.note(gpioNotGranted, "GPIO22", at(12*every), every); due {
		t.Fatal("a refusal from the past was reported")
	}
}

// However many names a module asks for, its watch keeps the same bytes:
// noting a name the samples do not hold allocates nothing.
func TestRefusalMemoryIsBounded(t *testing.T) {
	var w watch
	names := make([]string, 100_000)
	for i := range names {
		names[i] = fmt.Sprintf("%0256d", i) // as long as a name may be
	}
	for c := range numRefusals {
		w.note(c, "first", t0, time.Hour)
	}
	i := 0
	allocs := testing.AllocsPerRun(len(names)-1, func() {
		w.note(refusal(i%int(numRefusals)), names[i], t0, time.Hour)
		i++
	})
	if allocs > 0 {
		t.Fatalf("noting a new name allocates %v times", allocs)
	}
	kept := 0
	for _, ta := range w.tallies {
		for _, s := range ta.samples {
			kept += len(s)
		}
	}
	if most := int(numRefusals) * maxSamples * maxSample; kept > most {
		t.Fatalf("the samples hold %d bytes, more than %d", kept, most)
	}
	ps := w.due(t0.Add(time.Hour), time.Hour)
	if len(ps) != int(numRefusals) {
		t.Fatalf("%d summaries, want one per class", len(ps))
	}
	for _, p := range ps {
		for _, s := range p.samples {
			if len(s) > maxSample+len("…") || !strings.HasSuffix(s, "…") {
				t.Fatalf("sample %q is not cut to %d bytes with a marker", s, maxSample)
			}
		}
	}
}

func TestSampleCutsAtRunes(t *testing.T) {
	name := strings.Repeat("é", 100) // 2 bytes each: byte 64 starts a rune
	if s, cut := sample(name); len(s) != maxSample || !cut || !utf8.ValidString(s) {
		t.Fatalf("sample = %q (%d bytes), %v", s, len(s), cut)
	}
	name = "x" + strings.Repeat("€", 100) // 3 bytes each: byte 64 is inside one
	if s, cut := sample(name); len(s) > maxSample || len(s) < maxSample-2 || !cut || !utf8.ValidString(s) {
		t.Fatalf("sample = %q (%d bytes), %v", s, len(s), cut)
	}
	if s, cut := sample("GPIO17"); s != "GPIO17" || cut {
		t.Fatalf("a short name: %q, %v", s, cut)
	}
}

func TestBucket(t *testing.T) {
	var b bucket
	took := 0
	for range 100 {
		if b.take(t0, 10, 5) {
			took++
		}
	}
	if took != 5 {
		t.Fatalf("a full bucket gave %d tokens, want its burst of 5", took)
	}
	if b.take(t0.Add(-time.Hour), 10, 5) {
		t.Fatal("an earlier clock reading refilled the bucket")
	}
	if !b.take(t0.Add(100*time.Millisecond), 10, 5) || b.take(t0.Add(100*time.Millisecond), 10, 5) {
		t.Fatal("0.1 s at 10 a second is one token")
	}
	took = 0
	for range 100 {
		if b.take(t0.Add(time.Hour), 10, 5) {
			took++
		}
	}
	if took != 5 {
		t.Fatalf("after an hour the bucket gave %d tokens, want no more than its burst of 5", took)
	}
}

// A line's writes are bounded by its grant, on a clock the test moves.
func TestAllowWrite(t *testing.T) {
	w := watch{lines: grantedLines(Grants{GPIO: []string{"GPIO17@2/m", "GPIO22"}})}
	gpio17, gpio22 := w.granted([]byte("GPIO17")), w.granted([]byte("GPIO22"))
	if len(w.lines) != 2 || gpio17 == nil || gpio22 == nil {
		t.Fatalf("the lines of 2 grants: %+v", w.lines)
	}
	ok := 0
	for range 10 {
		if w.allowWrite(gpio17, t0) {
			ok++
		}
	}
	if ok != 2 {
		t.Fatalf("%d writes at 2/m, want 2", ok)
	}
	if w.allowWrite(gpio17, t0.Add(29*time.Second)) {
		t.Fatal("a write half a token later")
	}
	if !w.allowWrite(gpio17, t0.Add(30*time.Second)) {
		t.Fatal("no write a token later")
	}
	ok = 0
	for range 1000 {
		if w.allowWrite(gpio22, t0) {
			ok++
		}
	}
	if ok != defaultWriteRate.n {
		t.Fatalf("%d writes at the default rate, want its burst of %d", ok, defaultWriteRate.n)
	}
}

// Calls into a module run in parallel: every refusal they note is reported
// exactly once, as a first report or within one summary's count, however
// the notes and the periodic flushes interleave.
func TestRefusalsHammer(t *testing.T) {
	const goroutines, each = 8, 2000
	w := watch{lines: grantedLines(Grants{GPIO: []string{"GPIO17"}})}
	gpio17 := w.granted([]byte("GPIO17"))
	var reported atomic.Int64
	add := func(ps ...pending) {
		for _, p := range ps {
			if p.first {
				reported.Add(1)
			} else {
				reported.Add(p.count)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				if p, due := w.note(refusal(i%3), fmt.Sprint(g, i), t0.Add(time.Duration(i)*time.Second), time.Minute); due {
					add(p)
				}
				w.allowWrite(gpio17, t0)
				w.allowLog(t0, 100)
			}
		}()
		go func() {
			defer wg.Done()
			for i := range each / 10 {
				add(w.due(t0.Add(time.Duration(10*i)*time.Second), time.Minute)...)
			}
		}()
	}
	wg.Wait()
	add(w.due(t0.Add(24*time.Hour), time.Minute)...)
	if got := reported.Load(); got != goroutines*each {
		t.Fatalf("%d refusals reported, want all %d, once each", got, goroutines*each)
	}
}

// A module that floods its log, stops and floods again is reported once
// per interval, not once per flood (as the log host function and the
// stdout path do it: allowLog, then note the refusal).
func TestLogFloodOncePerInterval(t *testing.T) {
	var w watch
	floods, dropped := 0, 0
	for i := range 20000 {
		// Bursts of 1,000 lines a second for a second, then quiet for one.
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if i/1000%2 == 1 {
			continue
		}
		if w.allowLog(at, 100) {
			continue
		}
		dropped++
		if _, due := w.note(logFlood, "", at, refusalEvery); due {
			floods++
		}
	}
	if floods != 1 || dropped == 0 {
		t.Fatalf("ten floods in 20 s: %d reports, %d lines dropped; want one report", floods, dropped)
	}
	if ps := w.due(t0.Add(time.Hour), refusalEvery); len(ps) != 1 || ps[0].class != logFlood || ps[0].count != int64(dropped-1) {
		t.Fatalf("the summary of %d dropped lines after the first: %+v", dropped-1, ps)
	}
}
