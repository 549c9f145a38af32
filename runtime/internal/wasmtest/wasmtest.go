package wasmtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/wat"
)

// Module describes one module; empty fields take the well-behaved body.
type Module struct {
	Manifest                string // JSON
	Try, Run, Sense, Config string // function bodies returning i64
	Raw                     string // the whole module text, instead of the skeleton
}

// Static outputs in the module's memory. Packed gives their return values.
const (
	OutTry   = 1024 // status ok, condition holds, flags 0, action effect: true
	OutNull  = 1040 // status ok, null
	OutTrue  = 1056 // status ok, true
	InputBuf = 4096
	// Strings at 1100: "GPIO17" (1100), "GPIO22" (1106), "flood!" (1112),
	// "i2c1" (1118), "ttyS0" (1122), "ttyS1" (1127).
	Strings = 1100
)

// Packed is an export's return value for len bytes at ptr.
func Packed(ptr, n int) string { return fmt.Sprintf("(i64.const %d)", int64(ptr)<<32|int64(n)) }

// Manifest is the skeleton's manifest: a job on /evil/:name, a sensor on
// /evil_sensor every 50 ms.
const Manifest = `{"name":"evil","version":"1.0.0","abi":1,` +
	`"jobs":[{"name":"poke","path":"/evil/:name","op":"any"}],` +
	`"sensors":[{"name":"watch","path":"/evil_sensor","interval_ms":50}],` +
	`"resources":["gpio","i2c","serial"]}`

// Text is the module in WebAssembly text.
func (w Module) Text() string {
	if w.Raw != "" {
		return w.Raw
	}
	man := w.Manifest
	if man == "" {
		man = Manifest
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace
	return fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "tern" "gpio_write" (func $gpio_write (param i32 i32 i32) (result i32)))
  (import "tern" "log" (func $log (param i32 i32 i32)))
  (import "tern" "i2c_tx" (func $i2c_tx (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "tern" "serial_open" (func $serial_open (param i32 i32 i32) (result i32)))
  (import "tern" "serial_write" (func $serial_write (param i32 i32 i32) (result i32)))
  (import "tern" "serial_read" (func $serial_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "%s")
  (data (i32.const %d) "\00\01\00\00\03")
  (data (i32.const %d) "\00\01")
  (data (i32.const %d) "\00\03")
  (data (i32.const %d) "GPIO17GPIO22flood!i2c1ttyS0ttyS1")
  (func (export "_initialize"))
  (func (export "tern_abi_version") (result i32) (i32.const 1))
  (func (export "tern_alloc") (param i32) (result i32) (i32.const %d))
  (func (export "tern_describe") (result i64) %s)
  (func (export "tern_configure") (param i32 i32) (result i64) %s)
  (func (export "tern_try") (param i32 i32) (result i64) %s)
  (func (export "tern_run") (param i32 i32) (result i64) %s)
  (func (export "tern_sense") (param i32 i32) (result i64) %s))
`, esc(man), OutTry, OutNull, OutTrue, Strings, InputBuf, Packed(0, len(man)),
		or(w.Config, Packed(OutNull, 2)), or(w.Try, Packed(OutTry, 5)), or(w.Run, Packed(OutNull, 2)), or(w.Sense, Packed(OutTrue, 2)))
}

// Assemble turns WebAssembly text into a module (see package wat).
func Assemble(t testing.TB, text string) []byte {
	t.Helper()
	return wat.Assemble(t, text)
}
