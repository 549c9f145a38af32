package fleet_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/internal/signing"
	"github.com/tern-iot/tern/runtime/api"
)

func dryRunRequest(t *testing.T, edit func(*fleet.DryRunRequest)) []byte {
	t.Helper()
	r := fleet.DryRunRequest{Format: fleet.Format, Prefix: "tern", Fleet: "demo", ID: "dr-1-ab", Version: 7, Target: json.RawMessage(`{"relays":{"fan":true}}`)}
	if edit != nil {
		edit(&r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDryRunRequest(t *testing.T) {
	if r, err := fleet.ParseDryRunRequest(dryRunRequest(t, nil)); err != nil || r.ID != "dr-1-ab" || r.Version != 7 {
		t.Fatalf("a good request: %+v, %v", r, err)
	}
	if _, err := fleet.ParseDryRunRequest(dryRunRequest(t, func(r *fleet.DryRunRequest) { r.Version = fleet.MaxVersion })); err != nil {
		t.Errorf("the largest version: %v", err)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		is      error
		want    string
	}{
		{"no id", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.ID = "" }), fleet.ErrMalformed, `bad "id"`},
		{"id with a slash", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.ID = "a/b" }), fleet.ErrMalformed, "MQTT level separator"},
		{"id a wildcard", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.ID = "+" }), fleet.ErrMalformed, "MQTT wildcard"},
		{"version 0", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.Version = 0 }), fleet.ErrMalformed, "version 0"},
		{"version above the ceiling", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.Version = fleet.MaxVersion + 1 }), fleet.ErrMalformed, "above the largest version"},
		{"no fleet", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.Fleet = "" }), fleet.ErrMalformed, `no "fleet"`},
		{"target an array", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.Target = json.RawMessage(`[1]`) }), fleet.ErrMalformed, "must be a JSON object"},
		{"bad scope", dryRunRequest(t, func(r *fleet.DryRunRequest) { r.SignedScope = "module/x" }), fleet.ErrMalformed, `bad "scope"`},
		{"format 1", []byte(`{"format":1,"id":"x","version":1,"target":{}}`), fleet.ErrUnsupportedFormat, "no longer reads"},
		{"format 3", []byte(`{"format":3,"id":"x","version":1,"target":{}}`), fleet.ErrUnsupportedFormat, "upgrade ternd"},
		{"too large", append(dryRunRequest(t, nil), make([]byte, fleet.MaxPayload)...), fleet.ErrTooLarge, "over the"},
	} {
		_, err := fleet.ParseDryRunRequest(tc.payload)
		if !errors.Is(err, tc.is) || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.is, tc.want)
		}
	}
}

// A request verifies for the scope it was signed for only, and its
// signature passes for no target envelope (nor a target's for a request).
func TestDryRunRequestSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	trust := signing.NewTrust(pub)
	r := fleet.DryRunRequest{Format: fleet.Format, ID: "dr-1-ab", Version: 7, Target: json.RawMessage(`{"relays":{"fan":true}}`)}
	r.SetTopics(fleet.Topics{Fleet: "demo"})
	if err := r.Sign(fleet.GroupScope("heaters"), priv); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(fleet.GroupScope("heaters"), trust); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := r.Verify(fleet.GroupScope("fans"), trust); !errors.Is(err, fleet.ErrWrongScope) {
		t.Errorf("on another group's topic: %v", err)
	}
	changed := r
	changed.Target = json.RawMessage(`{"relays":{"fan":false}}`)
	if err := changed.Verify(fleet.GroupScope("heaters"), trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("another target under the signature: %v", err)
	}
	changed = r
	changed.ID = "dr-2-ab"
	if err := changed.Verify(fleet.GroupScope("heaters"), trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("another id under the signature: %v", err)
	}
	env := fleet.TargetEnvelope{Format: fleet.Format, Prefix: r.Prefix, Fleet: r.Fleet, Version: r.Version, Target: r.Target, SignedScope: r.SignedScope, Key: r.Key, Sig: r.Sig}
	if err := env.Verify(fleet.GroupScope("heaters"), trust); !errors.Is(err, signing.ErrBadSig) {
		t.Errorf("the request's signature on a target envelope: %v; a dry-run must never pass for a push", err)
	}
	unsigned := r
	unsigned.Key, unsigned.Sig = "", nil
	if err := unsigned.Verify(fleet.GroupScope("heaters"), trust); !errors.Is(err, signing.ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
	if err := r.CheckTopics(fleet.Topics{Fleet: "prod"}); !errors.Is(err, fleet.ErrWrongFleet) {
		t.Errorf("for another fleet: %v", err)
	}
}

func TestParseDryRunAnswer(t *testing.T) {
	good := fleet.DryRunAnswer{Format: 1, Device: "pi-001", ID: "dr-1-ab", Outcome: fleet.DryRunChange,
		Tasks: []fleet.DryRunTask{{Job: "relay.switch", Op: "update", Path: "/relays/fan"}}}
	b, _ := json.Marshal(good)
	if a, err := fleet.ParseDryRunAnswer(b); err != nil || len(a.Tasks) != 1 || a.Tasks[0].String() != "relay.switch update /relays/fan" {
		t.Fatalf("a good answer: %+v, %v", a, err)
	}
	most := good
	most.Tasks = make([]fleet.DryRunTask, fleet.MaxDryRunTasks)
	for i := range most.Tasks {
		most.Tasks[i] = good.Tasks[0]
	}
	most.Reason, most.Why = strings.Repeat("r", 1<<10), strings.Repeat("w", 8<<10)
	b, _ = json.Marshal(most)
	if _, err := fleet.ParseDryRunAnswer(b); err != nil {
		t.Errorf("the largest answer: %v", err)
	}
	over := most
	over.Tasks = append(over.Tasks, good.Tasks[0])
	b, _ = json.Marshal(over)
	if _, err := fleet.ParseDryRunAnswer(b); !errors.Is(err, fleet.ErrTooLarge) {
		t.Errorf("one task over: %v", err)
	}
	// Bound cuts it, and says so; the answer then parses.
	cut := over.Bound()
	if len(cut.Tasks) != fleet.MaxDryRunTasks || cut.MoreTasks != 1 || !cut.Truncated || len(over.Tasks) != fleet.MaxDryRunTasks+1 {
		t.Errorf("bound: %d tasks, %d more, truncated %v; the original keeps %d", len(cut.Tasks), cut.MoreTasks, cut.Truncated, len(over.Tasks))
	}
	b, _ = json.Marshal(cut)
	if _, err := fleet.ParseDryRunAnswer(b); err != nil {
		t.Errorf("a bounded answer: %v", err)
	}
	longPath := good
	longPath.Tasks = []fleet.DryRunTask{{Job: "relay.switch", Op: "update", Path: "/" + strings.Repeat("p", 600)}}
	if c := longPath.Bound(); len(c.Tasks[0].Path) > 512 || !c.Truncated || len(longPath.Tasks[0].Path) != 601 {
		t.Errorf("a long path, bound: %d bytes (the original: %d)", len(c.Tasks[0].Path), len(longPath.Tasks[0].Path))
	}
	for _, tc := range []struct{ name, payload, want string }{
		{"unknown outcome", `{"format":1,"device":"pi-001","id":"dr-1","outcome":"maybe"}`, `"outcome"`},
		{"no device", `{"format":1,"id":"dr-1","outcome":"change"}`, `bad "device"`},
		{"no id", `{"format":1,"device":"pi-001","outcome":"change"}`, `bad "id"`},
		{"negative more", `{"format":1,"device":"pi-001","id":"dr-1","outcome":"change","more_tasks":-1}`, "negative"},
		{"format 2", `{"format":2,"device":"pi-001","id":"dr-1","outcome":"change"}`, "format"},
	} {
		if _, err := fleet.ParseDryRunAnswer([]byte(tc.payload)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
}

func TestDryRunTopics(t *testing.T) {
	tp := fleet.Topics{Fleet: "demo"}
	for got, want := range map[string]string{
		tp.DeviceDryRun("pi-001"):                "tern/demo/devices/pi-001/dryrun",
		tp.GroupDryRun("heaters"):                "tern/demo/groups/heaters/dryrun",
		tp.DryRunAnswer("pi-001", "dr-1-ab"):     "tern/demo/devices/pi-001/dryrun/dr-1-ab",
		tp.DryRunAnswer(fleet.AnyDevice, "dr-1"): "tern/demo/devices/+/dryrun/dr-1",
	} {
		if got != want {
			t.Errorf("topic %s, want %s", got, want)
		}
	}
}

func FuzzParseDryRunRequest(f *testing.F) {
	for _, s := range []string{
		`{"format":2,"prefix":"tern","fleet":"demo","id":"dr-1-ab","version":7,"target":{"relays":{"fan":true}},"scope":"group/heaters"}`,
		`{"format":2,"prefix":"tern","fleet":"demo","id":"dr-1-ab","version":9007199254740992,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","id":"a/b","version":1,"target":{}}`,
		`{"format":2,"prefix":"tern","fleet":"demo","id":"x","version":1,"target":[]}`,
		`{"format":2,"prefix":"tern","fleet":"demo","id":"x","version":1,"target":{},"scope":"device/"}`,
		`{"format":1,"id":"x","version":1,"target":{}}`, `[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	trust := signing.NewTrust(make(ed25519.PublicKey, ed25519.PublicKeySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fleet.ParseDryRunRequest(b)
		if err != nil {
			return
		}
		if r.Version == 0 || r.Version > fleet.MaxVersion || fleet.ValidID(r.ID) != nil || (fleet.Topics{Prefix: r.Prefix, Fleet: r.Fleet}).Validate() != nil {
			t.Fatalf("accepted a request that breaks its own rules: %+v", r)
		}
		// What parsed can be verified (and fails) without a panic.
		if err := r.Verify(fleet.DeviceScope("pi-001"), trust); err == nil {
			t.Fatalf("a fuzzed request verified against a zero key: %+v", r)
		}
	})
}

func FuzzParseDryRunAnswer(f *testing.F) {
	for _, s := range []string{
		`{"format":1,"device":"pi-001","id":"dr-1-ab","outcome":"change","tasks":[{"job":"relay.switch","op":"update","path":"/relays/fan"}]}`,
		`{"format":1,"device":"pi-001","id":"dr-1-ab","outcome":"cannot","reason":"no plan","why":"no plan\n  /a: is 1, target 2"}`,
		`{"format":1,"device":"pi-001","id":"dr-1-ab","outcome":"change","more_tasks":-5}`,
		`{"format":1,"device":"pi-001","id":"dr-1-ab","outcome":"busy","truncated":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := fleet.ParseDryRunAnswer(b)
		if err != nil {
			return
		}
		if len(a.Tasks) > fleet.MaxDryRunTasks || a.MoreTasks < 0 || len(a.Why) > 8<<10 || len(a.Reason) > 1<<10 {
			t.Fatalf("accepted an answer over its bounds: %d tasks, %d more, %d-byte why", len(a.Tasks), a.MoreTasks, len(a.Why))
		}
	})
}

// dryRunDevice runs a device and waits until it reported once: its
// dry-run subscription went to the broker before its report did.
func dryRunDevice(t *testing.T, op *fleet.Operator, opts fleet.DeviceOptions) *fleet.Device {
	t.Helper()
	d := newDevice(t, opts)
	run(t, d)
	states, err := op.WatchStates(t.Context(), opts.Device)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PublishState(t.Context(), api.Status{Phase: "idle"}); err != nil {
		t.Fatal(err)
	}
	recv(t, states, opts.Device+"'s state report")
	return d
}

// answerNext takes the next dry-run request of d and answers it.
func answerNext(t *testing.T, d *fleet.Device, outcome string) fleet.ScopedDryRun {
	t.Helper()
	for {
		recv(t, d.DryRunsWaiting(), "a dry-run request")
		got := d.TakeDryRuns()
		if len(got) == 0 {
			continue
		}
		r := got[0]
		if err := d.AnswerDryRun(t.Context(), fleet.DryRunAnswer{ID: r.ID, Scope: r.Scope, Version: r.Version, Outcome: outcome,
			Tasks: []fleet.DryRunTask{{Job: "relay.switch", Op: "update", Path: "/relays/fan"}}}); err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// Through each broker: a dry-run request for a group reaches its devices
// (and no other), signed, and their answers reach the operator who asked.
func TestDryRunRoundTrip(t *testing.T) {
	forEachBroker(t, func(t *testing.T, url string) {
		op := dialOperator(t, url)
		in := testOptions(url, "pi-001")
		in.Groups = []string{"floor"}
		pi1 := dryRunDevice(t, op, in)
		pi2 := dryRunDevice(t, op, testOptions(url, "pi-002")) // not in the group
		_, priv, _ := ed25519.GenerateKey(nil)
		req := fleet.DryRunRequest{Format: fleet.Format, ID: fleet.NewDryRunID(time.Now()), Version: 9, Target: json.RawMessage(`{"relays":{"fan":true}}`)}
		req.SetTopics(topics)
		if err := req.Sign(fleet.GroupScope("floor"), priv); err != nil {
			t.Fatal(err)
		}
		answers, err := op.DryRun(t.Context(), fleet.GroupScope("floor"), req)
		if err != nil {
			t.Fatal(err)
		}
		got := answerNext(t, pi1, fleet.DryRunChange)
		if got.Scope != "group/floor" || got.ID != req.ID || got.Key == "" {
			t.Errorf("the request as pi-001 took it: %+v", got)
		}
		a := recv(t, answers, "pi-001's answer")
		if a.Device != "pi-001" || a.ID != req.ID || a.Outcome != fleet.DryRunChange || len(a.Tasks) != 1 {
			t.Errorf("the answer: %+v", a)
		}
		select {
		case <-pi2.DryRunsWaiting():
			t.Errorf("pi-002, not in the group, got %+v", pi2.TakeDryRuns())
		default:
		}
	})
}

// The shipped ACL lets a device read its own dry-run requests and write
// its answers.
func TestDryRunShippedACL(t *testing.T) {
	acl, err := filepath.Abs(filepath.Join("..", "firmware", "mosquitto", "acl.conf"))
	if err != nil {
		t.Fatal(err)
	}
	url := fleettest.MosquittoWithACL(t, map[string]string{"tern-operator": "ops", "pi-001": "one"}, acl)
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{Broker: url, Topics: topics, Username: "tern-operator", Password: "ops", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	opts := testOptions(url, "pi-001")
	opts.Username, opts.Password = "pi-001", "one"
	d := dryRunDevice(t, op, opts)
	req := fleet.DryRunRequest{Format: fleet.Format, ID: "dr-acl", Version: 1, Target: json.RawMessage(`{}`)}
	answers, err := op.DryRun(t.Context(), fleet.DeviceScope("pi-001"), req)
	if err != nil {
		t.Fatal(err)
	}
	answerNext(t, d, fleet.DryRunConverged)
	if a := recv(t, answers, "the answer through the ACL"); a.Outcome != fleet.DryRunConverged {
		t.Errorf("the answer: %+v", a)
	}
}
