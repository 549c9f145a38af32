//go:build mahler

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// bench.mjs answers batches over its pipes and plans the supervisor as
// tern does. It needs Node and Mahler, which `make test` does not install:
// run.sh runs it (with the build tag mahler) after installing Mahler, before
// the benchmark.
func TestMahler(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is needed to run Mahler: apt-get install -y nodejs npm")
	}
	if _, err := os.Stat("mahler/node_modules/mahler"); err != nil {
		t.Fatal("Mahler is not installed: run bench/planner/run.sh, which installs it")
	}
	m, err := startMahler("mahler")
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	pol := policy{Problem: "supervisor", MinRuns: 2, MaxRuns: 2, SlowMS: 10_000}
	for range 2 { // the second batch reuses the built planner
		b, err := m.batch(pol)
		if err != nil {
			t.Fatal(err)
		}
		if b.Error != "" || b.Actions != problemNamed(t, "supervisor").actions || len(b.MS) != 2 || b.Warm != 1 {
			t.Fatalf("batch %+v", b)
		}
	}
	if b, err := m.batch(policy{Problem: "nope"}); err != nil || !strings.Contains(b.Error, "unknown problem") {
		t.Fatalf("unknown problem: %+v, %v", b, err)
	}
}
