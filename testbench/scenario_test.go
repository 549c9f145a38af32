package testbench_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/testbench"
)

// Every problem in a scenario file is reported at once, with its line,
// and says what to write instead.
func TestParseErrors(t *testing.T) {
	const base = "modules:\n  relay: {plugin: relay}\nagents:\n  - name: r\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key with a suggestion", base + "    cuont: 3\nassertions:\n  - converged: {all: true}\n",
			[]string{`line 5: unknown key "cuont" in agents[0]; did you mean "count"?`, "the keys there are: board, count, groups"}},
		{"unknown top-level key", "agentz: []\n", []string{`line 1: unknown key "agentz" at the top level; did you mean "agents"?`}},
		{"bad duration", base + "timeline:\n  - at: soon\n    push: {device: r-001, target: {a: 1}}\nassertions:\n  - converged: {all: true}\n",
			[]string{`line 6: "soon" is not a duration: write it as 500ms, 5s or 1m30s`}},
		{"no assertions", base, []string{"a scenario without assertions cannot fail"}},
		{"unknown device", base + "assertions:\n  - converged: {device: r-009}\n",
			[]string{"line 6: assertions[0]: device r-009 is not one of the agents"}},
		{"two kinds in one assertion", base + "assertions:\n  - converged: {all: true}\n    nothing_lost: {all: true}\n",
			[]string{"exactly one of converged, not_converged"}},
		{"unknown fault", base + "timeline:\n  - fault: {kind: meteor, all: true}\nassertions:\n  - converged: {all: true}\n",
			[]string{`line 6: timeline[0]: fault: kind "meteor" is not a fault the testbench injects; write one of broker_down,`}},
		{"unknown module", "agents:\n  - name: r\n    modules: [relay]\nassertions:\n  - converged: {all: true}\n",
			[]string{`agents[0].modules: "relay" is not under modules:`}},
		{"two module sources", "modules:\n  relay: {plugin: relay, wasm: r.wasm}\nagents: [{name: r}]\nassertions: [{converged: {all: true}}]\n",
			[]string{"modules.relay: give exactly one of plugin"}},
		{"wrong type", base + "    count: many\nassertions:\n  - converged: {all: true}\n",
			[]string{"line 5: a string `many` where this expects int"}},
		{"negative count", base + "    count: -2\nassertions:\n  - converged: {all: true}\n",
			[]string{"agents[0].count: -2 is negative"}},
		{"job without a command", base + "timeline:\n  - job: {id: j1, device: r-001, module: relay}\nassertions:\n  - job: {all: true, id: j1, phase: succeeded}\n",
			[]string{"timeline[0]: job j1: module: and command: name what it runs"}},
		{"job time not RFC 3339", base + "timeline:\n  - job: {id: j1, device: r-001, module: relay, command: pulse, at: tomorrow}\nassertions:\n  - job: {all: true, id: j1, phase: succeeded}\n",
			[]string{`job j1: at: "tomorrow": write an RFC 3339 time`}},
		{"job assertion without a phase", base + "assertions:\n  - job: {all: true, id: j1}\n",
			[]string{"job: id: and phase: are required"}},
		{"clock backwards", base + "timeline:\n  - advance_clock: -1h\nassertions:\n  - converged: {all: true}\n",
			[]string{"advance_clock: the clock moves forward"}},
		{"scenario clock with a process agent", base + "    process: true\nclock: 2026-12-06T22:00:00Z\nassertions:\n  - converged: {all: true}\n",
			[]string{"a process agent reads the host's clock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testbench.Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not say\n%s", err, w)
				}
			}
		})
	}
}

// The malformed example reports all three of its problems.
func TestLoadMalformed(t *testing.T) {
	_, err := testbench.Load("testdata/malformed.yaml")
	if err == nil {
		t.Fatal("loaded")
	}
	for _, w := range []string{"testdata/malformed.yaml", "line 6:", `"cuont"`, "line 8:", `"soon"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// Every standard scenario parses, and the suite has the stories the
// testbench promises.
func TestStandardScenariosParse(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range files {
		sc, err := testbench.Load(f)
		if err != nil {
			t.Error(err)
			continue
		}
		names[sc.Name] = true
	}
	for _, want := range []string{"thermostat-fleet", "broker-outage", "network-cut", "i2c-nack", "serial-garbage", "module-rollback", "fixes-propagate", "power-cuts", "jobs-overnight"} {
		if !names[want] {
			t.Errorf("scenarios/ has no %s scenario", want)
		}
	}
}

// make test's share of the standard suite: the scenarios that run in
// seconds, end to end through the runner, must pass (make testbench runs
// them all). A failure prints the report.
func TestStandardSuiteFastSubset(t *testing.T) {
	for _, name := range []string{"thermostat-fleet", "module-rollback", "serial-garbage"} {
		t.Run(name, func(t *testing.T) { mustPass(t, filepath.Join("scenarios", name+".yaml")) })
	}
}

// make test's share of jobs-overnight: the same night on five gateways.
func TestJobsShort(t *testing.T) { mustPass(t, "testdata/jobs-short.yaml") }

// make test's share of rollout-abort: waves, the watcher's auto-abort, a
// device offline during the halt, and the fixed release, on ten boards.
func TestRolloutShort(t *testing.T) { mustPass(t, "testdata/rollout-short.yaml") }

// mustPass runs the scenario in file end to end through the runner; a
// failure prints the report.
func mustPass(t *testing.T, file string) {
	t.Helper()
	sc, err := testbench.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	res := testbench.Run(t.Context(), sc, testbench.Options{})
	if !res.Passed {
		var report bytes.Buffer
		testbench.WriteReport(&report, []*testbench.Result{res})
		t.Fatalf("%s failed:\n%s", sc.Name, report.String())
	}
	t.Logf("%s: %d assertions passed", sc.Name, len(res.Assertions))
}

// A scenario whose assertions cannot hold fails, and says why in words:
// what was expected, what was seen. The JUnit report carries the same.
func TestFailingScenario(t *testing.T) {
	sc, err := testbench.Load("testdata/impossible.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := testbench.Run(context.Background(), sc, testbench.Options{})
	if res.Error != "" {
		t.Fatalf("the scenario did not run: %s", res.Error)
	}
	if res.Passed {
		t.Fatal("an impossible scenario passed")
	}
	verdicts := map[string]testbench.AssertionResult{}
	for _, a := range res.Assertions {
		verdicts[a.Name] = a
		t.Logf("%v %s: %s", a.Passed, a.Name, a.Reason)
	}
	for name, want := range map[string]struct {
		passed bool
		reason string
	}{
		`the heater says "on"`:                                {false, `want "on"; r-001: /relays/heater is true`},
		"converged: device r-001 within 20s":                  {true, "1 of 1 converged"},
		"rolled back: all agents rolled relay back within 1s": {false, "0 of 1 reported module.rolled_back of relay; r-001: none among its"},
		"nothing lost: all agents":                            {true, "seq contiguous from 1"},
		"timeline step at 0s":                                 {false, "fault sensor_stuck: no chip at i2c1:0x48 on the board; list it under the board's i2c"},
	} {
		got, ok := verdicts[name]
		if !ok {
			t.Errorf("no verdict for %q", name)
			continue
		}
		if got.Passed != want.passed || !strings.Contains(got.Reason, want.reason) {
			t.Errorf("%s: passed %v, reason %q; want passed %v and a reason saying %q", name, got.Passed, got.Reason, want.passed, want.reason)
		}
	}

	var text bytes.Buffer
	testbench.WriteReport(&text, []*testbench.Result{res})
	for _, w := range []string{"=== FAIL impossible", `FAIL  the heater says "on" (line 19)`, "0 of 1 scenarios passed"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("report does not say %q:\n%s", w, text.String())
		}
	}

	var junit bytes.Buffer
	if err := testbench.WriteJUnit(&junit, []*testbench.Result{res}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &doc); err != nil {
		t.Fatalf("JUnit XML does not parse: %v\n%s", err, junit.String())
	}
	if len(doc.Suites) != 1 || doc.Suites[0].Name != "impossible" || doc.Tests != 5 || doc.Failures != 3 {
		t.Fatalf("JUnit: %d suites, %d tests, %d failures; want 1 suite impossible, 5 tests, 3 failures:\n%s", len(doc.Suites), doc.Tests, doc.Failures, junit.String())
	}
}
