//go:build wasip1

package sdk

import (
	"encoding/json"
	"errors"
	"time"
	"unsafe"

	"github.com/tern-iot/tern/sdk/abi"
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
		b = []byte(`{}`)
	}
	outbuf = b
	return pack(outbuf)
}

//go:wasmexport tern_configure
func configure(ptr unsafe.Pointer, size uint32) uint64 {
	if int(size) > len(inbuf) {
		return output(abi.AppendError(outbuf[:0], errTooLarge))
	}
	Configure(json.RawMessage(append([]byte(nil), inbuf[:size]...)))
	out, _ := abi.EncodeValue(outbuf[:0], nil) // null: never an error
	return output(out)
}

//go:wasmexport tern_try
func try(ptr unsafe.Pointer, size uint32) uint64 { return call("try", size) }

//go:wasmexport tern_run
func run(ptr unsafe.Pointer, size uint32) uint64 { return call("run", size) }

//go:wasmexport tern_sense
func sense(ptr unsafe.Pointer, size uint32) uint64 { return call("sense", size) }

var errTooLarge = errors.New("sdk: input larger than the allocated buffer")

// call dispatches the input the host wrote into inbuf (ptr is inbuf's
// data: the host got it from tern_alloc).
func call(export string, size uint32) uint64 {
	if int(size) > len(inbuf) {
		return output(abi.AppendError(outbuf[:0], errTooLarge))
	}
	return output(dispatch(export, inbuf[:size], outbuf[:0]))
}

// output keeps b as the output buffer, alive until the next call.
func output(b []byte) uint64 {
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

//go:wasmimport tern i2c_tx
func hostI2CTx(bus unsafe.Pointer, busLen uint32, addr uint32, w unsafe.Pointer, wlen uint32, r unsafe.Pointer, rlen uint32) int32

//go:wasmimport tern serial_open
func hostSerialOpen(name unsafe.Pointer, size uint32, baud uint32) int32

//go:wasmimport tern serial_write
func hostSerialWrite(handle int32, p unsafe.Pointer, size uint32) int32

//go:wasmimport tern serial_read
func hostSerialRead(handle int32, p unsafe.Pointer, size uint32, timeoutMS uint32) int32

//go:wasmimport tern serial_close
func hostSerialClose(handle int32) int32

//go:wasmimport tern gpio_in
func hostGPIOIn(name unsafe.Pointer, size uint32, pull uint32) int32

//go:wasmimport tern gpio_wait_edge
func hostGPIOWaitEdge(name unsafe.Pointer, size uint32, timeoutMS uint32) int32

//go:wasmimport tern state_read
func hostStateRead(path unsafe.Pointer, size uint32, buf unsafe.Pointer, bufCap uint32) int32

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

func i2cTx(bus string, addr uint16, w, r []byte) error {
	b, n := strArg(bus)
	if e := hostI2CTx(b, n, uint32(addr), unsafe.Pointer(unsafe.SliceData(w)), uint32(len(w)), unsafe.Pointer(unsafe.SliceData(r)), uint32(len(r))); e != 0 {
		return Errno(e)
	}
	return nil
}

func serialOpen(name string, baud int) (int32, error) {
	p, n := strArg(name)
	if h := hostSerialOpen(p, n, uint32(baud)); h < 0 {
		return 0, Errno(-h)
	} else {
		return h, nil
	}
}

func serialWrite(h int32, b []byte) (int, error) {
	n := hostSerialWrite(h, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
	if n < 0 {
		return 0, Errno(-n)
	}
	return int(n), nil
}

func serialRead(h int32, b []byte, timeout time.Duration) (int, error) {
	n := hostSerialRead(h, unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)), uint32(timeout/time.Millisecond))
	if n < 0 {
		return 0, Errno(-n)
	}
	return int(n), nil
}

func serialClose(h int32) error {
	if e := hostSerialClose(h); e != 0 {
		return Errno(e)
	}
	return nil
}

func gpioIn(line string, pull uint32) error {
	p, n := strArg(line)
	if e := hostGPIOIn(p, n, pull); e != 0 {
		return Errno(e)
	}
	return nil
}

func gpioWaitEdge(line string, timeout time.Duration) (bool, error) {
	p, n := strArg(line)
	r := hostGPIOWaitEdge(p, n, uint32(timeout/time.Millisecond))
	if r < 0 {
		return false, Errno(-r)
	}
	return r == 1, nil
}

// stateRead appends the wire form of the state's value at path to *arena
// and returns it. Values already read stay valid: when *arena must grow,
// they keep the old array.
func stateRead(path string, arena *[]byte) ([]byte, error) {
	p, n := strArg(path)
	for range 2 {
		b := *arena
		if cap(b)-len(b) < 256 {
			b = make([]byte, len(b), 2*cap(b)+4096)
		}
		free := b[len(b):cap(b)]
		got := hostStateRead(p, n, unsafe.Pointer(unsafe.SliceData(free)), uint32(len(free)))
		if got < 0 {
			return nil, Errno(-got)
		}
		if int(got) <= len(free) {
			*arena = b[:len(b)+int(got)]
			return free[:got:got], nil
		}
		*arena = make([]byte, len(b), len(b)+int(got)) // too small: once more, with room
	}
	return nil, ErrnoIO
}
