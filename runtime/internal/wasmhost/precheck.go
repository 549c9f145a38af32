package wasmhost

import (
	"errors"
	"fmt"
)

// MaxModuleSize bounds a module's bytes. tern's Go modules are 3–4 MiB.
const MaxModuleSize = 32 << 20

// precheck reads a module's section headers before wazero decodes it, and
// refuses a vector that declares more entries than its section has bytes.
// wazero 1.12 allocates a vector's declared size up front, so a 300-byte
// module claiming 2^32 imports would make it ask for tens of GiB and crash
// the agent (found by FuzzLoad). It also refuses locals declarations that
// add up past the limit the WebAssembly spec allows engines to impose.
func precheck(wasm []byte) error {
	if len(wasm) > MaxModuleSize {
		return fmt.Errorf("module is %d bytes, more than the %d allowed", len(wasm), MaxModuleSize)
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return errors.New("not a WebAssembly binary (no \\0asm header)")
	}
	r := leb{b: wasm[8:]}
	for len(r.b) > 0 {
		id := r.b[0]
		r.b = r.b[1:]
		size, err := r.u32()
		if err != nil {
			return err
		}
		if int(size) > len(r.b) {
			return fmt.Errorf("section %d declares %d bytes, %d remain", id, size, len(r.b))
		}
		sec := leb{b: r.b[:size]}
		r.b = r.b[size:]
		switch id {
		case 1, 2, 3, 4, 5, 6, 7, 9, 11: // vectors of at least one byte per entry
			n, err := sec.u32()
			if err != nil {
				return fmt.Errorf("section %d: %w", id, err)
			}
			if int(n) > len(sec.b) {
				return fmt.Errorf("section %d declares %d entries in %d bytes", id, n, len(sec.b))
			}
		case 10: // code: check each body's locals
			if err := precheckCode(sec); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxLocals is the most locals a function may declare.
const maxLocals = 50000

func precheckCode(sec leb) error {
	n, err := sec.u32()
	if err != nil {
		return fmt.Errorf("code section: %w", err)
	}
	if int(n) > len(sec.b) {
		return fmt.Errorf("code section declares %d bodies in %d bytes", n, len(sec.b))
	}
	for i := uint32(0); i < n; i++ {
		size, err := sec.u32()
		if err != nil || int(size) > len(sec.b) {
			return fmt.Errorf("code section: body %d is cut short", i)
		}
		body := leb{b: sec.b[:size]}
		sec.b = sec.b[size:]
		decls, err := body.u32()
		if err != nil || int(decls) > len(body.b) {
			return fmt.Errorf("code section: body %d declares %d local groups in %d bytes", i, decls, len(body.b))
		}
		total := uint64(0)
		for d := uint32(0); d < decls; d++ {
			count, err := body.u32()
			if err != nil || len(body.b) == 0 {
				return fmt.Errorf("code section: body %d: locals cut short", i)
			}
			body.b = body.b[1:] // the type
			if total += uint64(count); total > maxLocals {
				return fmt.Errorf("code section: body %d declares more than %d locals", i, maxLocals)
			}
		}
	}
	return nil
}

// leb reads unsigned LEB128 numbers.
type leb struct{ b []byte }

func (r *leb) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if len(r.b) == 0 {
			return 0, errors.New("number cut short")
		}
		c := r.b[0]
		r.b = r.b[1:]
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("number longer than 32 bits")
}
