package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tern-iot/tern/testbench"
)

// testbenchRun is `tern testbench run`: it runs scenario files one after
// the other, shows progress (a live line on a terminal), prints the report
// (or JSON) and fails if any assertion failed.
func testbenchRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("testbench run", stderr)
	junit := fs.String("junit", "", "also write a JUnit XML report to this file, for CI")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of the report")
	agentLog := fs.String("agent-log", "", "write every agent's log (ternd's, level info) to this file")
	seed := fs.Uint64("seed", 0, "replace every scenario's seed (the report prints the one a run used, to replay it)")
	ternd := fs.String("ternd", "", "the ternd binary process agents run (default: build cmd/ternd, which needs the tern source tree)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("testbench run: name at least one scenario file, e.g. testbench/scenarios/*.yaml")}
	}
	// Every file is checked before anything runs.
	var scenarios []*testbench.Scenario
	var errs []error
	for _, f := range fs.Args() {
		if err := checkFileArg("scenario", f, "give a scenario file, e.g. testbench/scenarios/broker-outage.yaml"); err != nil {
			return err
		}
	}
	for _, f := range fs.Args() {
		sc, err := testbench.Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		scenarios = append(scenarios, sc)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	opts := testbench.Options{Progress: stderr, Live: isTerminal(stderr), Seed: *seed, Ternd: *ternd}
	// A cluster's nodes (broker: cluster) run `tern broker`: this tern.
	if exe, err := os.Executable(); err == nil {
		opts.Tern = exe
	}
	if *agentLog != "" {
		f, err := os.Create(*agentLog)
		if err != nil {
			return fmt.Errorf("testbench: --agent-log: %w", err)
		}
		defer f.Close()
		opts.AgentLog = f
	}
	var results []*testbench.Result
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		results = append(results, testbench.Run(ctx, sc, opts))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		testbench.WriteReport(stdout, results)
	}
	if *junit != "" {
		f, err := os.Create(*junit)
		if err != nil {
			return fmt.Errorf("testbench: --junit: %w", err)
		}
		err = testbench.WriteJUnit(f, results)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range results {
		if !r.Passed {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("testbench: %d of %d scenarios failed", failed, len(results))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("testbench: interrupted after %d of %d scenarios", len(results), len(scenarios))
	}
	return nil
}
