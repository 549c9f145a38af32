//go:build wasip1

package sdk

import (
	"encoding/json"
	"unsafe"
)

// The exports below are the module side of ABI.md.

var (
	inbuf  []byte // written by the host after tern_alloc
	outbuf []byte // kept alive until the next call
)

//go:wasmexport tern_abi_version
func abiVersion() int32 { return ABIVersion }

//go:wasmexport tern_alloc
func alloc(size uint32) unsafe.Pointer {
	if cap(inbuf) < int(size) {
		inbuf = make([]byte, size)
	}
	inbuf = inbuf[:size]
	return unsafe.Pointer(unsafe.SliceData(inbuf))
}

//go:wasmexport tern_describe
func describe() uint64 {
	b, err := json.Marshal(Describe())
	if err != nil {
		return output(Result{Error: err.Error()})
	}
	outbuf = b
	return pack(outbuf)
}

//go:wasmexport tern_configure
func configure(ptr unsafe.Pointer, size uint32) uint64 {
	if int(size) > len(inbuf) {
		return output(Result{Error: "sdk: input larger than the allocated buffer"})
	}
	Configure(json.RawMessage(append([]byte(nil), inbuf[:size]...)))
	return output(Result{})
}

//go:wasmexport tern_try
func try(ptr unsafe.Pointer, size uint32) uint64 { return call("try", size) }

//go:wasmexport tern_run
func run(ptr unsafe.Pointer, size uint32) uint64 { return call("run", size) }

//go:wasmexport tern_sense
func sense(ptr unsafe.Pointer, size uint32) uint64 { return call("sense", size) }

// call decodes the input the host wrote into inbuf (ptr is inbuf's data:
// the host got it from tern_alloc) and dispatches.
func call(export string, size uint32) uint64 {
	var c Call
	if int(size) > len(inbuf) {
		return output(Result{Error: "sdk: input larger than the allocated buffer"})
	}
	if err := json.Unmarshal(inbuf[:size], &c); err != nil {
		return output(Result{Error: "sdk: decoding call: " + err.Error()})
	}
	return output(Dispatch(export, c))
}

func output(r Result) uint64 {
	b, err := json.Marshal(r)
	if err != nil {
		b = []byte(`{"error":"sdk: encoding result"}`)
	}
	outbuf = b
	return pack(outbuf)
}

func pack(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}

//go:wasmimport tern gpio_write
func hostGPIOWrite(name unsafe.Pointer, size uint32, level uint32) int32

//go:wasmimport tern gpio_read
func hostGPIORead(name unsafe.Pointer, size uint32) int32

//go:wasmimport tern log
func hostLog(level int32, msg unsafe.Pointer, size uint32)

func strArg(s string) (unsafe.Pointer, uint32) {
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

func gpioWrite(line string, high bool) error {
	var level uint32
	if high {
		level = 1
	}
	p, n := strArg(line)
	if e := hostGPIOWrite(p, n, level); e != 0 {
		return Errno(e)
	}
	return nil
}

func gpioRead(line string) (bool, error) {
	p, n := strArg(line)
	r := hostGPIORead(p, n)
	if r < 0 {
		return false, Errno(-r)
	}
	return r == 1, nil
}

func logf(level int32, msg string) {
	p, n := strArg(msg)
	hostLog(level, p, n)
}
