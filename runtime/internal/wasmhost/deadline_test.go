package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/internal/testbound"
	"github.com/tern-iot/tern/runtime/internal/wasmhost"
	"github.com/tern-iot/tern/runtime/internal/wasmtest"
	"github.com/tern-iot/tern/sdk/abi"
)

// Endless loops of every shape: a tight one, a loop nested in a loop, and
// a loop that calls a function with a loop of its own.
var endless = map[string]string{
	"tight":  `(loop $l (br $l)) (unreachable)`,
	"nested": `(loop $outer (loop $inner (br $inner))) (unreachable)`,
	"calls":  `(loop $l (call $spin) (br $l)) (unreachable)`,
}

const deadlineChildEnv = "TERN_WASMHOST_DEADLINE_CHILD"

// A module that never returns is stopped at its deadline even when the Go
// runtime has one processor (a Raspberry Pi Zero): compiled code checks
// for termination every so many loop iterations (the patched wazero's
// loop budget, third_party/README.md), which must leave the goroutine
// that closes the module room to run. If it did not, nothing in that
// process would run again, not even the test's own timeout: so each loop
// runs in a child process with GOMAXPROCS=1, which this test kills if it
// does not answer in time.
func TestDeadlineWithOneProcessor(t *testing.T) {
	for name := range endless {
		t.Run(name, func(t *testing.T) {
			text := wasmtest.Module{Try: endless[name]}.Text()
			text = strings.Replace(text, `(func (export "_initialize"))`, `(func (export "_initialize"))
  (func $spin (local i32) (loop $k (local.set 0 (i32.add (local.get 0) (i32.const 1))) (br_if $k (i32.lt_u (local.get 0) (i32.const 1000)))))`, 1)
			path := filepath.Join(t.TempDir(), name+".wasm")
			if err := os.WriteFile(path, wasmtest.Assemble(t, text), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testbound.Scale(time.Minute))
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), deadlineChildEnv+"="+path, "GOMAXPROCS=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("a module in an endless %s loop, with a 200 ms deadline and one processor, still ran after %v: its process was killed", name, testbound.Scale(time.Minute))
			}
			if err != nil || !strings.Contains(out.String(), "stopped at the deadline") {
				t.Fatalf("child: %v\n%s", err, out.String())
			}
		})
	}
}

// deadlineChild runs the module at path, whose try loops forever, with a
// 200 ms deadline, in this process (GOMAXPROCS=1, set by the parent), and
// says how it ended.
func deadlineChild(path string) int {
	ctx := context.Background()
	wasm, err := os.ReadFile(path)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	dir, err := os.MkdirTemp("", "wasmhost-deadline-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir, CallTimeout: 200 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, wasm, wasmhost.Grants{}, nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	_, err = m.Try(ctx, abi.Call{Job: "poke", Path: "/evil/x"})
	if !errors.Is(err, wasmhost.ErrCall) || !strings.Contains(err.Error(), "deadline") {
		fmt.Println("want the deadline, got", err)
		return 1
	}
	fmt.Println("stopped at the deadline:", err)
	return 0
}
