package fleet_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/signing"
)

var rolloutStart = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)

// Waves are shares of the fleet: over many devices each wave holds about
// its share; the same device is always in the same wave of a rollout, and
// another rollout deals the devices again.
func TestRolloutWaves(t *testing.T) {
	ro := fleet.Rollout{ID: "relay-5", Waves: []float64{0.01, 0.1, 0.5, 1}, Start: rolloutStart, Interval: fleet.Duration(time.Hour)}
	const n = 100_000
	counts := make([]int, len(ro.Waves))
	moved := 0
	other := ro
	other.ID = "relay-6"
	for i := range n {
		d := fmt.Sprintf("pi-%06d", i)
		w := ro.Wave(d)
		if w != ro.Wave(d) {
			t.Fatalf("%s: wave %d, then %d", d, w, ro.Wave(d))
		}
		counts[w]++
		if other.Wave(d) != w {
			moved++
		}
	}
	want := []float64{0.01, 0.09, 0.4, 0.5}
	for i, c := range counts {
		share := float64(c) / n
		if math.Abs(share-want[i]) > 0.01 {
			t.Errorf("wave %d holds %.3f of the devices, want about %.2f", i+1, share, want[i])
		}
	}
	if moved < n/3 {
		t.Errorf("another rollout id moved only %d of %d devices to another wave", moved, n)
	}
	if got := ro.Opens(2); !got.Equal(rolloutStart.Add(2 * time.Hour)) {
		t.Errorf("wave 3 opens at %v", got)
	}
}

func TestRolloutCheck(t *testing.T) {
	good := fleet.Rollout{ID: "r", Waves: []float64{0.5, 1}, Start: rolloutStart}
	for name, tc := range map[string]struct {
		edit func(*fleet.Rollout)
		want string
	}{
		"no waves":       {func(r *fleet.Rollout) { r.Waves = nil }, `"waves" is empty`},
		"not growing":    {func(r *fleet.Rollout) { r.Waves = []float64{0.5, 0.5, 1} }, "must grow"},
		"not to 1":       {func(r *fleet.Rollout) { r.Waves = []float64{0.5, 0.9} }, "must be 1"},
		"NaN":            {func(r *fleet.Rollout) { r.Waves = []float64{math.NaN(), 1} }, "must grow"},
		"too many":       {func(r *fleet.Rollout) { r.Waves = make([]float64, 17) }, "over the limit of 16"},
		"no start":       {func(r *fleet.Rollout) { r.Start = time.Time{} }, `"start" is missing`},
		"bad id":         {func(r *fleet.Rollout) { r.ID = "a/b" }, `bad "id"`},
		"long interval":  {func(r *fleet.Rollout) { r.Interval = fleet.Duration(365 * 24 * time.Hour) }, `"interval"`},
		"negative defer": {func(r *fleet.Rollout) { r.DeferMax = -1 }, `"defer_max"`},
		"abort over 100": {func(r *fleet.Rollout) { r.Abort = &fleet.AbortRule{FailedPercent: 101} }, `"abort"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			err := r.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
		})
	}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestAbortRule(t *testing.T) {
	r := fleet.AbortRule{FailedPercent: 5, MinFinished: 20}
	for _, tc := range []struct {
		ok, failed int
		trips      bool
	}{{10, 5, false}, {19, 1, false}, {19, 2, true}, {95, 5, false}, {94, 6, true}, {0, 0, false}} {
		if got := r.Trips(tc.ok, tc.failed); got != tc.trips {
			t.Errorf("%d succeeded, %d failed: trips %v, want %v", tc.ok, tc.failed, got, tc.trips)
		}
	}
}

// The rollout is part of what the envelope's signature covers: a policy
// changed on the way (waves widened, a window dropped) breaks it.
func TestRolloutIsSigned(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	trust := signing.NewTrust(pub)
	ro := &fleet.Rollout{ID: "boilers-1", Waves: []float64{0.1, 1}, Start: rolloutStart, Interval: fleet.Duration(time.Hour), Disruptive: true}
	env := fleet.TargetEnvelope{Format: fleet.Format, Version: 7, Target: json.RawMessage(`{"a":1}`), Rollout: ro}
	env.SetTopics(fleet.Topics{Fleet: "demo"})
	if err := env.Sign(fleet.GroupScope("boilers"), priv); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	got, err := fleet.ParseTargetEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(fleet.GroupScope("boilers"), trust); err != nil {
		t.Fatalf("the signed envelope: %v", err)
	}
	for name, edit := range map[string]func(*fleet.Rollout){
		"waves":      func(r *fleet.Rollout) { r.Waves = []float64{1} },
		"disruptive": func(r *fleet.Rollout) { r.Disruptive = false },
		"start":      func(r *fleet.Rollout) { r.Start = r.Start.Add(-time.Hour) },
	} {
		tampered := got
		r := *got.Rollout
		edit(&r)
		tampered.Rollout = &r
		if err := tampered.Verify(fleet.GroupScope("boilers"), trust); !errors.Is(err, signing.ErrBadSig) {
			t.Errorf("%s changed: %v, want a bad signature", name, err)
		}
	}
	dropped := got
	dropped.Rollout = nil
	if err := dropped.Verify(fleet.GroupScope("boilers"), trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("rollout dropped: %v, want a bad signature", err)
	}

	rel := fleet.NewRelease("relay", 5, []byte("\x00asm\x01\x00\x00\x00"))
	rel.SetTopics(fleet.Topics{Fleet: "demo"})
	rel.Rollout = ro
	rel.Sign(priv)
	manifest, _ := rel.Split(fleet.ChunkSize)
	if err := manifest.Verify(trust); err != nil {
		t.Fatalf("the chunked release's manifest: %v", err)
	}
	manifest.Rollout = nil
	if err := manifest.Verify(trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("a release's rollout dropped: %v, want a bad signature", err)
	}
}

func TestRolloutControl(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	trust := signing.NewTrust(pub)
	c := fleet.RolloutControl{Format: fleet.Format, Rollout: "relay-5", Version: 2, State: fleet.RolloutPaused, Reason: "checking",
		What: "module relay version 5", Scope: "module/relay", Policy: &fleet.Rollout{ID: "relay-5", Waves: []float64{1}, Start: rolloutStart}}
	c.SetTopics(fleet.Topics{Fleet: "demo"})
	c.Sign(priv)
	b, _ := json.Marshal(c)
	got, err := fleet.ParseRolloutControl(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(trust); err != nil {
		t.Fatal(err)
	}
	got.State = fleet.RolloutRunning
	if err := got.Verify(trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("state changed: %v, want a bad signature", err)
	}
	for name, tc := range map[string]struct{ in, want string }{
		"bad state":     {`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"maybe"}`, `"state" is "maybe"`},
		"no rollout":    {`{"format":2,"prefix":"tern","fleet":"demo","version":1,"state":"paused"}`, `bad "rollout"`},
		"version 0":     {`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":0,"state":"paused"}`, "version"},
		"long reason":   {`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"paused","reason":"` + strings.Repeat("x", 2000) + `"}`, "over 1024 bytes"},
		"other policy":  {`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"paused","policy":{"id":"s","waves":[1],"start":"2026-12-06T04:00:00Z"}}`, `rollout "s"'s`},
		"bad policy":    {`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"paused","policy":{"id":"r","waves":[2],"start":"2026-12-06T04:00:00Z"}}`, "must grow"},
		"format 1":      {`{"format":1,"rollout":"r","version":1,"state":"paused"}`, "format"},
		"not an object": {`[]`, "JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := fleet.ParseRolloutControl([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseRolloutControl(f *testing.F) {
	for _, s := range []string{
		`{"format":2,"prefix":"tern","fleet":"demo","rollout":"relay-5","version":2,"state":"paused","reason":"x","what":"module relay version 5","scope":"module/relay","policy":{"id":"relay-5","waves":[0.01,0.1,0.5,1],"start":"2026-12-06T04:00:00Z","interval":"1h0m0s","disruptive":true,"windows":[{"days":["sat"],"from":"02:00","to":"04:00","zone":"Europe/Berlin"}],"abort":{"failed_percent":5,"min_finished":20}}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"running"}`,
		`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"aborted","policy":{"id":"r","waves":[1],"start":"2026-12-06T04:00:00Z","windows":[{"zone":"Nowhere/City"}]}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","rollout":"r","version":1,"state":"running","policy":{"id":"r","waves":[1e308,1],"start":"2026-12-06T04:00:00Z","interval":"-5s"}}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	trust := signing.NewTrust(make(ed25519.PublicKey, ed25519.PublicKeySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := fleet.ParseRolloutControl(b)
		if err != nil {
			return
		}
		if err := c.Verify(trust); err == nil {
			t.Fatal("a control verified against a key nobody holds")
		}
		if p := c.Policy; p != nil {
			if err := p.Check(); err != nil {
				t.Fatalf("a parsed control's policy does not check: %v", err)
			}
			w := p.Wave("pi-001")
			if w < 0 || w >= len(p.Waves) {
				t.Fatalf("wave %d of %d", w, len(p.Waves))
			}
		}
	})
}
