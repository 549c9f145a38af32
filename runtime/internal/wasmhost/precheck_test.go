package wasmhost

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/internal/wat"
)

// Hand-built binaries: the hostile counts below cannot be written in
// WebAssembly text.

// u32 is v in unsigned LEB128.
func u32(v uint32) []byte { return appendU32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// str is a name: its length, then its bytes.
func str(s string) []byte { return cat(u32(uint32(len(s))), []byte(s)) }

// vec declares n entries and holds the given ones: n need not be their
// number, which is the point.
func vec(n uint32, entries ...[]byte) []byte { return cat(u32(n), cat(entries...)) }

func sec(id byte, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat([]byte{id}, u32(uint32(len(body))), body)
}

func mod(sections ...[]byte) []byte { return cat([]byte("\x00asm\x01\x00\x00\x00"), cat(sections...)) }

// The pieces of a module with one function of type () -> ().
var (
	voidType = sec(1, vec(1, []byte{0x60, 0, 0}))
	oneFunc  = sec(3, vec(1, u32(0)))
	noLocals = []byte{0}
)

// code is a code section holding one function with the given locals
// declarations and instructions, to which it adds the final end.
func code(locals []byte, instrs ...byte) []byte {
	body := cat(locals, instrs, []byte{0x0b})
	return sec(10, vec(1, cat(u32(uint32(len(body))), body)))
}

// withFunc is a module of one function with the given instructions, plus
// the sections given, in order after the function section.
func withFunc(instrs []byte, sections ...[]byte) []byte {
	var before, after [][]byte
	for _, s := range sections {
		if s[0] < 10 {
			before = append(before, s)
		} else {
			after = append(after, s)
		}
	}
	return mod(voidType, oneFunc, cat(before...), code(noLocals, instrs...), cat(after...))
}

// compileConfig is the host's, as far as decoding and compiling go: DWARF
// sections are not parsed (see runtimeConfig).
var compileConfig = wazero.NewRuntimeConfig().WithMemoryLimitPages(2048).WithDebugInfoEnabled(false)

func compileModule(t *testing.T, wasm []byte) error {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, compileConfig)
	defer rt.Close(ctx)
	_, err := rt.CompileModule(ctx, wasm)
	return err
}

// TestPrecheckNestedCounts checks each place a count or a length is
// declared: the module with the honest count passes precheck and
// compiles; the same module declaring a hostile count is refused with a
// message that says which count and where.
func TestPrecheckNestedCounts(t *testing.T) {
	const huge = 1<<32 - 1
	table := sec(4, vec(1, []byte{0x70, 1, 1, 1}))
	memory := sec(5, vec(1, []byte{0, 1}))
	offset := []byte{0x41, 0, 0x0b} // i32.const 0, end
	refFunc := []byte{0xd2, 0, 0x0b}
	elem := func(head []byte, entry []byte) func(n uint32) []byte {
		return func(n uint32) []byte { return withFunc(nil, table, sec(9, vec(1, cat(head, vec(n, entry))))) }
	}
	nameSection := func(sub byte, content []byte) []byte {
		return withFunc(nil, sec(0, str("name"), []byte{sub}, u32(uint32(len(content))), content))
	}
	for _, tc := range []struct {
		name             string
		module           func(n uint32) []byte
		honest, declared uint32
		want             string
	}{{
		name:   "types",
		module: func(n uint32) []byte { return mod(sec(1, vec(n, []byte{0x60, 0, 0}))) },
		honest: 1, declared: 1 << 31,
		want: "type section declares 2147483648 types in 3 bytes",
	}, {
		name:   "type parameters",
		module: func(n uint32) []byte { return mod(sec(1, vec(1, cat([]byte{0x60}, vec(n, []byte{0x7f}), vec(0))))) },
		honest: 1, declared: 1000000,
		want: "type 0 declares 1000000 parameters in 2 bytes",
	}, {
		name:   "type results",
		module: func(n uint32) []byte { return mod(sec(1, vec(1, cat([]byte{0x60, 0}, vec(n, []byte{0x7f}))))) },
		honest: 1, declared: huge,
		want: "type 0 declares 4294967295 results in 1 byte",
	}, {
		name:   "type in a recursion group",
		module: func(n uint32) []byte { return mod(sec(1, vec(1, cat([]byte{0x4e}, vec(n, []byte{0x60, 0, 0}))))) },
		honest: 1, declared: huge,
		want: "type 0: recursion group declares 4294967295 types in 3 bytes",
	}, {
		name: "imports",
		module: func(n uint32) []byte {
			return mod(voidType, sec(2, vec(n, cat(str("env"), str("f"), []byte{0, 0}))))
		},
		honest: 1, declared: huge,
		want: "import section declares 4294967295 imports in 8 bytes",
	}, {
		name: "import module name",
		module: func(n uint32) []byte {
			return mod(voidType, sec(2, vec(1, cat(u32(n), []byte("env"), str("f"), []byte{0, 0}))))
		},
		honest: 3, declared: huge,
		want: "import 0 declares a module name of 4294967295 bytes in 7 bytes",
	}, {
		name: "import name",
		module: func(n uint32) []byte {
			return mod(voidType, sec(2, vec(1, cat(str("env"), u32(n), []byte("f"), []byte{0, 0}))))
		},
		honest: 1, declared: 1 << 20,
		want: "import 0 declares a name of 1048576 bytes in 3 bytes",
	}, {
		name:   "functions",
		module: func(n uint32) []byte { return mod(voidType, sec(3, vec(n, u32(0))), code(noLocals)) },
		honest: 1, declared: huge,
		want: "function section declares 4294967295 functions in 1 byte",
	}, {
		name:   "tables",
		module: func(n uint32) []byte { return mod(sec(4, vec(n, []byte{0x70, 1, 1, 1}))) },
		honest: 1, declared: huge,
		want: "table section declares 4294967295 tables in 4 bytes",
	}, {
		name:   "memories",
		module: func(n uint32) []byte { return mod(sec(5, vec(n, []byte{0, 1}))) },
		honest: 1, declared: huge,
		want: "memory section declares 4294967295 memories in 2 bytes",
	}, {
		name:   "globals",
		module: func(n uint32) []byte { return mod(sec(6, vec(n, cat([]byte{0x7f, 0}, offset)))) },
		honest: 1, declared: huge,
		want: "global section declares 4294967295 globals in 5 bytes",
	}, {
		name:   "exports",
		module: func(n uint32) []byte { return withFunc(nil, sec(7, vec(n, cat(str("f"), []byte{0, 0})))) },
		honest: 1, declared: huge,
		want: "export section declares 4294967295 exports in 4 bytes",
	}, {
		name:   "export name",
		module: func(n uint32) []byte { return withFunc(nil, sec(7, vec(1, cat(u32(n), []byte("f"), []byte{0, 0})))) },
		honest: 1, declared: huge,
		want: "export 0 declares a name of 4294967295 bytes in 3 bytes",
	}, {
		name: "element segments",
		module: func(n uint32) []byte {
			return withFunc(nil, table, sec(9, vec(n, cat([]byte{0}, offset, vec(1, u32(0))))))
		},
		honest: 1, declared: huge,
		want: "element section declares 4294967295 segments in 6 bytes",
	}, {
		name:   "element segment 0: active, function indices",
		module: elem(cat([]byte{0}, offset), u32(0)),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 1 byte",
	}, {
		name:   "element segment 1: passive, function indices",
		module: elem([]byte{1, 0}, u32(0)),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 1 byte",
	}, {
		name:   "element segment 2: active with a table index, function indices",
		module: elem(cat([]byte{2, 0}, offset, []byte{0}), u32(0)),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 1 byte",
	}, {
		name:   "element segment 3: declarative, function indices",
		module: elem([]byte{3, 0}, u32(0)),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 1 byte",
	}, {
		name:   "element segment 4: active, expressions",
		module: elem(cat([]byte{4}, offset), refFunc),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 3 bytes",
	}, {
		name:   "element segment 5: passive, expressions",
		module: elem([]byte{5, 0x70}, refFunc),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 3 bytes",
	}, {
		name:   "element segment 6: active with a table index, expressions",
		module: elem(cat([]byte{6, 0}, offset, []byte{0x70}), refFunc),
		honest: 1, declared: huge,
		want: "element segment 0 declares 4294967295 entries in 3 bytes",
	}, {
		name:   "element segment 7: declarative, expressions",
		module: elem([]byte{7, 0x70}, refFunc),
		honest: 1, declared: 1 << 24,
		want: "element segment 0 declares 16777216 entries in 3 bytes",
	}, {
		name:   "code bodies",
		module: func(n uint32) []byte { return mod(voidType, oneFunc, sec(10, vec(n, []byte{2, 0, 0x0b}))) },
		honest: 1, declared: huge,
		want: "code section declares 4294967295 bodies in 3 bytes",
	}, {
		name:   "function body size",
		module: func(n uint32) []byte { return mod(voidType, oneFunc, sec(10, vec(1, cat(u32(n), []byte{0, 0x0b})))) },
		honest: 2, declared: huge,
		want: "function 0 declares a body of 4294967295 bytes, 2 remain",
	}, {
		name:   "local declarations",
		module: func(n uint32) []byte { return mod(voidType, oneFunc, code(vec(n, []byte{1, 0x7f}))) },
		honest: 1, declared: huge,
		want: "function 0 declares 4294967295 local declarations in 3 bytes",
	}, {
		name:   "locals",
		module: func(n uint32) []byte { return mod(voidType, oneFunc, code(vec(1, cat(u32(n), []byte{0x7f})))) },
		honest: maxLocals, declared: maxLocals + 1,
		want: "function 0 declares more than 50000 locals",
	}, {
		name: "br_table targets",
		module: func(n uint32) []byte {
			// block, i32.const 0, br_table n×[0] 0, end
			return withFunc(cat([]byte{0x02, 0x40, 0x41, 0, 0x0e}, vec(n, u32(0)), u32(0), []byte{0x0b}))
		},
		honest: 1, declared: huge,
		want: "function 0: br_table at offset 27 declares 4294967295 targets in 4 bytes",
	}, {
		name: "block nesting",
		module: func(n uint32) []byte {
			return withFunc(cat(bytes.Repeat([]byte{0x02, 0x40}, int(n)), bytes.Repeat([]byte{0x0b}, int(n))))
		},
		honest: maxNesting, declared: maxNesting + 1,
		want: "function 0 nests blocks 16385 deep (at most 16384)",
	}, {
		name: "data segments",
		module: func(n uint32) []byte {
			return withFunc(nil, memory, sec(11, vec(n, cat([]byte{1}, str("x")))))
		},
		honest: 1, declared: huge,
		want: "data section declares 4294967295 segments in 3 bytes",
	}, {
		name: "active data segment length",
		module: func(n uint32) []byte {
			return withFunc(nil, memory, sec(11, vec(1, cat([]byte{0}, offset, u32(n), []byte("x")))))
		},
		honest: 1, declared: huge,
		want: "data segment 0 declares 4294967295 bytes in 1 byte",
	}, {
		name: "passive data segment length",
		module: func(n uint32) []byte {
			return withFunc(nil, memory, sec(11, vec(1, cat([]byte{1}, u32(n), []byte("xyz")))))
		},
		honest: 3, declared: 1 << 31,
		want: "data segment 0 declares 2147483648 bytes in 3 bytes",
	}, {
		name:   "custom section name",
		module: func(n uint32) []byte { return mod(sec(0, u32(n), []byte("tern"), []byte{1, 2, 3})) },
		honest: 4, declared: huge,
		want: "custom section declares a name of 4294967295 bytes in 7 bytes",
	}, {
		name:   "name section: module name",
		module: func(n uint32) []byte { return nameSection(0, cat(u32(n), []byte("m"))) },
		honest: 1, declared: huge,
		want: "name section declares a module name of 4294967295 bytes in 1 byte",
	}, {
		name:   "name section: function name map",
		module: func(n uint32) []byte { return nameSection(1, vec(n, cat(u32(0), str("f")))) },
		honest: 1, declared: huge,
		want: "name section: function name map declares 4294967295 names in 3 bytes",
	}, {
		name:   "name section: function name",
		module: func(n uint32) []byte { return nameSection(1, vec(1, cat(u32(0), u32(n), []byte("f")))) },
		honest: 1, declared: huge,
		want: "name section: function name map: entry 0 declares a name of 4294967295 bytes in 1 byte",
	}, {
		name: "name section: local name map",
		module: func(n uint32) []byte {
			return nameSection(2, vec(n, cat(u32(0), vec(1, cat(u32(0), str("x"))))))
		},
		honest: 1, declared: huge,
		want: "name section: local name map declares 4294967295 functions in 5 bytes",
	}, {
		name: "name section: local names of a function",
		module: func(n uint32) []byte {
			return nameSection(2, vec(1, cat(u32(0), vec(n, cat(u32(0), str("x"))))))
		},
		honest: 1, declared: huge,
		want: "name section: local name map of function 0 declares 4294967295 names in 3 bytes",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			valid := tc.module(tc.honest)
			out, err := precheck(valid, 1<<16)
			if err != nil {
				t.Fatalf("precheck refused the honest module: %v", err)
			}
			if err := compileModule(t, out); err != nil {
				t.Fatalf("wazero refused the honest module after precheck: %v", err)
			}
			_, err = precheck(tc.module(tc.declared), 1<<16)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("precheck of the hostile module:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestPrecheckStructure checks the refusals that are not about a count.
func TestPrecheckStructure(t *testing.T) {
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"not wasm", []byte("\x7fELF\x02\x01\x01\x00"), "not a WebAssembly binary"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "not a core WebAssembly module: version 0d 00 01 00"},
		{"section size", mod([]byte{1, 100, 0}), "section 1 at offset 8 declares 100 bytes, 1 remain"},
		{"section size cut short", mod([]byte{1, 0x80}), "section 1 at offset 8: size: number cut short"},
		{"section size too long", mod([]byte{1, 0x80, 0x80, 0x80, 0x80, 0x80, 0}), "section 1 at offset 8: size: number longer than 32 bits"},
		{"bytes after the last entry", mod(sec(1, vec(0), []byte{0})), "type section has 1 bytes after its last entry"},
		{"unknown section", mod(sec(14)), "module has a section with unknown id 14"},
		{"tag section", mod(sec(13, vec(0))), "module has a tag section"},
		{"name subsection size", withFunc(nil, sec(0, str("name"), []byte{1, 9}, vec(0))), "name section: subsection 1 declares 9 bytes, 1 remain"},
		{"name subsection longer than its content", withFunc(nil, sec(0, str("name"), []byte{1, 2}, vec(0), []byte{0})), "name section: subsection 1 has 1 bytes after its last entry"},
		{"import kind", mod(sec(2, vec(1, cat(str("env"), str("x"), []byte{4, 0, 0})))), `import 0 ("env"."x"): kind 0x4`},
		{"element flags", withFunc(nil, sec(9, vec(1, []byte{8}))), "element segment 0: flags 0x8, want 0 to 7"},
		{"element kind", withFunc(nil, sec(9, vec(1, []byte{1, 1, 0}))), "element segment 0: element kind 0x1, want 0"},
		{"data flags", mod(sec(11, vec(1, []byte{3}))), "data segment 0: flags 0x3, want 0 to 2"},
		{"constant expression", mod(sec(6, vec(1, []byte{0x7f, 0, 0x6a, 0x0b}))), "global 0: instruction 0x6a is not allowed in a constant expression"},
		{"unknown instruction", withFunc([]byte{0x06}), "function 0: unknown instruction 0x6 at offset"},
		{"threads", withFunc([]byte{0xfe, 0x03, 0}), "function 0: unknown instruction 0xfe at offset"},
		{"unknown SIMD instruction", withFunc([]byte{0xfd, 0x9a, 0x01}), "function 0: unknown instruction 0xfd 0x9a at offset"},
		{"SIMD opcode not as wazero reads it", withFunc([]byte{0x41, 0, 0xfd, 0x8c, 0x00}), "function 0: SIMD opcode at offset 25 is not encoded as wazero reads it"},
		{"unknown 0xfc instruction", withFunc([]byte{0xfc, 18}), "function 0: unknown instruction 0xfc 18 at offset"},
		{"immediate cut short", mod(voidType, oneFunc, sec(10, vec(1, []byte{2, 0, 0x41}))), "function 0: instruction 0x41 at offset 23: number cut short"},
		{"missing end", mod(voidType, oneFunc, sec(10, vec(1, []byte{3, 0, 0x02, 0x40}))), "function 0: body ends inside a block"},
		{"bytes after the end", mod(voidType, oneFunc, sec(10, vec(1, []byte{3, 0, 0x0b, 0x01}))), "function 0: 1 bytes follow the end of its body"},
		{"block type too long", withFunc([]byte{0x02, 0xc0, 0x80, 0x80, 0x80, 0x10, 0x0b}), "number longer than 33 bits"},
		{"select with two types", withFunc([]byte{0x1c, 2, 0x7f, 0x7f}), "function 0: select at offset 23 has 2 types, want 1"},
		{"invalid value type", mod(sec(1, vec(1, []byte{0x60, 1, 0x40, 0}))), "type 0: parameters: invalid value type 0x40"},
		{"function index after imports", mod(voidType, sec(2, vec(1, cat(str("env"), str("f"), []byte{0, 0}))), oneFunc, code(noLocals, 0x06)), "function 1: unknown instruction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := precheck(tc.wasm, 1<<16)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPrecheckBlockTypes checks block types that wazero reads as a
// number followed, for the reference type prefixes, by a heap type: the
// walk must end where wazero's does. Read as a number alone, the first
// one would be a block typed 0x63 holding a block of type 0.
func TestPrecheckBlockTypes(t *testing.T) {
	types := sec(1, vec(3, []byte{0x60, 0, 0}, []byte{0x60, 0, 0}, []byte{0x60, 0, 0}))
	for name, instrs := range map[string][]byte{
		"(ref null 2)":            {0x02, 0x63, 0x02, 0x00, 0x0b, 0x1a},
		"(ref null 2), 0x63 long": {0x02, 0xe3, 0x7f, 0x02, 0x00, 0x0b, 0x1a},
		"(ref func)":              {0x02, 0x64, 0x70, 0x00, 0x0b, 0x1a},
		"type index 0":            {0x02, 0x00, 0x0b},
		"type index 0, long":      {0x02, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b},
		"(result i32), long":      {0x02, 0xff, 0x7f, 0x41, 0x00, 0x0b, 0x1a},
	} {
		t.Run(name, func(t *testing.T) {
			wasm := mod(types, oneFunc, code(noLocals, instrs...))
			if _, err := precheck(wasm, 1<<16); err != nil {
				t.Fatal(err)
			}
			if err := compileModule(t, wasm); err != nil {
				t.Fatalf("wazero refused it: %v", err)
			}
		})
	}
}

// TestPrecheckTables checks that tables are bounded: a minimum above the
// cap is refused, a maximum absent or above it is lowered to it.
func TestPrecheckTables(t *testing.T) {
	const limit = 100
	definedTable := func(limits ...byte) []byte {
		return mod(sec(4, vec(1, cat([]byte{0x70}, limits))))
	}
	importedTable := func(limits ...byte) []byte {
		return mod(sec(2, vec(1, cat(str("env"), str("t"), []byte{1, 0x70}, limits))))
	}
	for _, tc := range []struct {
		name     string
		in, want []byte // want nil: unchanged
		err      string
	}{
		{name: "no maximum", in: definedTable(0, 1), want: definedTable(1, 1, limit)},
		{name: "maximum above the cap", in: definedTable(1, 0, 0x80, 0x80, 0x80, 0x80, 0x0f), want: definedTable(1, 0, limit)},
		{name: "maximum at the cap", in: definedTable(1, 1, limit)},
		{name: "minimum at the cap", in: definedTable(0, limit), want: definedTable(1, limit, limit)},
		{name: "minimum above the cap", in: definedTable(0, limit+1), err: "table 0 declares a minimum of 101 entries, more than the 100 allowed"},
		{name: "imported, no maximum", in: importedTable(0, 0), want: importedTable(1, 0, limit)},
		{
			name: "imported, minimum above the cap", in: importedTable(0, 200, 1),
			err: `table 0 (imported "env"."t") declares a minimum of 200 entries, more than the 100 allowed`,
		},
		{
			name: "two tables, the second rewritten",
			in:   mod(sec(4, vec(2, []byte{0x70, 1, 0, 5}, []byte{0x6f, 0, 3}))),
			want: mod(sec(4, vec(2, []byte{0x70, 1, 0, 5}, []byte{0x6f, 1, 3, limit}))),
		},
		{
			name: "both imported and defined, with padded sizes",
			in: mod(
				[]byte{2, 0x8b, 0x80, 0x80, 0x80, 0}, vec(1, cat(str("env"), str("t"), []byte{1, 0x70, 0, 0})),
				[]byte{4, 0x84, 0x80, 0}, vec(1, []byte{0x70, 0, 2}),
				sec(0, str("after"), []byte{1, 2, 3}),
			),
			want: mod(
				sec(2, vec(1, cat(str("env"), str("t"), []byte{1, 0x70, 1, 0, limit}))),
				sec(4, vec(1, []byte{0x70, 1, 2, limit})),
				sec(0, str("after"), []byte{1, 2, 3}),
			),
		},
		{
			name: "a table with an initializer",
			in:   mod(sec(4, vec(1, []byte{0x40, 0, 0x70, 0, 1, 0xd0, 0x70, 0x0b}))),
			want: mod(sec(4, vec(1, []byte{0x40, 0, 0x70, 1, 1, limit, 0xd0, 0x70, 0x0b}))),
		},
		{name: "17 tables", in: mod(sec(4, vec(17, bytes.Repeat([]byte{0x70, 0, 0}, 17)))), err: "module has more than 16 tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := precheck(tc.in, limit)
			switch {
			case tc.err != "":
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %v, want %s", err, tc.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.want == nil:
				if &out[0] != &tc.in[0] || len(out) != len(tc.in) {
					t.Fatalf("rewrote a module that needed no rewriting:\n% x\n% x", tc.in, out)
				}
			case !bytes.Equal(out, tc.want):
				t.Fatalf("got\n% x\nwant\n% x", out, tc.want)
			}
			again, err := precheck(out, limit)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("precheck of its own output: %v\n% x\n% x", err, again, out)
			}
		})
	}
}

// TestPrecheckTableGrowFails runs a module whose table has no maximum:
// as written, it can grow its table as far as it likes (a GiB takes 2^27
// entries); as precheck rewrites it, growing past the cap fails inside
// the module.
func TestPrecheckTableGrowFails(t *testing.T) {
	ctx := context.Background()
	text := `(module
  (table 1 funcref)
  (func (export "grow") (param i32) (result i32)
    (table.grow 0 (ref.null func) (local.get 0))))`
	in := wat.Assemble(t, text)
	const limit = 100
	out, err := precheck(in, limit)
	if err != nil {
		t.Fatal(err)
	}
	grow := func(wasm []byte, delta uint32) int32 {
		t.Helper()
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		m, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.ExportedFunction("grow").Call(ctx, uint64(delta))
		if err != nil {
			t.Fatal(err)
		}
		return int32(res[0])
	}
	if got := grow(in, 1000); got != 1 {
		t.Fatalf("as written, growing by 1000 returned %d, want 1 (the old size)", got)
	}
	if got := grow(out, limit-1); got != 1 {
		t.Fatalf("after precheck, growing to the cap returned %d, want 1 (the old size)", got)
	}
	if got := grow(out, limit); got != -1 {
		t.Fatalf("after precheck, growing past the cap returned %d, want -1", got)
	}
}

// TestPrecheckGoModule checks precheck against what Go's wasip1 port
// emits: a module that passes with only its table's maximum added (Go
// declares one funcref table without one) and its data segments merged,
// and still compiles.
func TestPrecheckGoModule(t *testing.T) {
	in, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		t.Fatal(err)
	}
	out, err := precheck(in, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if err := compileModule(t, out); err != nil {
		t.Fatal(err)
	}
	// Only the table and data sections differ.
	var inTables, outTables []byte
	rest := func(wasm []byte, tables *[]byte) []byte {
		var other []byte
		r := reader{b: wasm[8:]}
		for len(r.b) > 0 {
			id, _ := r.byte()
			size, _ := r.u32()
			s := r.sub(int(size))
			if id == 4 {
				*tables = s.b
				continue
			}
			if id == 11 {
				continue
			}
			other = append(append(other, id), s.b...)
		}
		return other
	}
	if !bytes.Equal(rest(in, &inTables), rest(out, &outTables)) {
		t.Fatal("precheck changed more than the table and data sections")
	}
	inData, inSegs := dataImage(t, in)
	outData, outSegs := dataImage(t, out)
	if !bytes.Equal(inData, outData) {
		t.Fatal("the merged data segments do not write what the module's own do")
	}
	t.Logf("data segments: %d merged into %d", inSegs, outSegs)
	if outSegs*100 > inSegs {
		t.Fatalf("%d data segments merged into %d; Go's should merge a hundredfold", inSegs, outSegs)
	}
	tr := reader{b: inTables}
	if n, _ := tr.u32(); n != 1 {
		t.Fatalf("Go's module has %d tables, want 1", n)
	}
	tr.byte() // funcref
	flags, min, _, _ := tr.limits()
	if flags != 0 {
		t.Fatalf("Go's table has limits flags %d: the test expects no maximum", flags)
	}
	if want := cat(vec(1, []byte{0x70, 1}), u32(min), u32(1<<16)); !bytes.Equal(outTables, want) {
		t.Fatalf("table section: got % x, want % x", outTables, want)
	}
	if _, err := precheck(in, min-1); err == nil || !strings.Contains(err.Error(), "table 0 declares a minimum of") {
		t.Fatalf("with a cap below Go's table: %v", err)
	}
}

// BenchmarkPrecheck walks a Go module: what precheck adds to every load.
func BenchmarkPrecheck(b *testing.B) {
	in, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := precheck(in, 1<<16); err != nil {
			b.Fatal(err)
		}
	}
}

// featuresText uses every kind of immediate, and the SIMD opcodes whose
// LEB128 encoding takes two bytes, as wabt encodes them.
const featuresText = `(module
  (type $pair (func (param i32) (result i32 i32)))
  (import "env" "f" (func $imported (param i32)))
  (import "env" "t" (table 1 5 funcref))
  (memory 1 2)
  (table $t 2 8 externref)
  (table $f 4 10 funcref)
  (global $g (mut i64) (i64.const -1234567890123))
  (global $v v128 (v128.const i32x4 1 2 3 4))
  (global $r funcref (ref.null func))
  (data $d "hello")
  (data (i32.const 8) "world")
  (elem $e func $simd $control)
  (elem (table $f) (i32.const 0) funcref (ref.func $simd) (ref.null func))
  (elem declare func $control)
  (func $control (param $x i32) (result i32) (local $y i64) (local $z f32) (local $w f64)
    (drop (block $out (result i32)
      (loop $again
        (br_if $again (i32.eqz (local.get $x)))
        (block (br_table 0 1 0 (local.get $x))))
      (if (result i32) (local.get $x)
        (then (i32.const 1))
        (else (i32.const 2)))
      (drop)
      (call_indirect $f (type $pair) (local.get $x) (i32.const 0))
      (drop)
      (select (result i32) (local.get $x) (i32.const 3) (i32.const 1))
      (br $out)))
    (local.set $y (i64.const 9223372036854775807))
    (local.set $z (f32.const 1.5))
    (local.set $w (f64.const -2.25))
    (global.set $g (i64.extend32_s (local.get $y)))
    (drop (i32.trunc_sat_f64_s (local.get $w)))
    (i32.store offset=4 align=2 (i32.const 0) (i32.load8_u offset=65536 (i32.const 0)))
    (drop (memory.grow (memory.size)))
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 5))
    (data.drop $d)
    (memory.copy (i32.const 0) (i32.const 1) (i32.const 2))
    (memory.fill (i32.const 0) (i32.const 1) (i32.const 2))
    (table.init $f $e (i32.const 0) (i32.const 0) (i32.const 1))
    (elem.drop $e)
    (table.copy $f $f (i32.const 0) (i32.const 1) (i32.const 1))
    (drop (table.grow $t (ref.null extern) (i32.const 1)))
    (drop (table.size $t))
    (table.fill $t (i32.const 0) (ref.null extern) (i32.const 1))
    (table.set $t (i32.const 0) (table.get $t (i32.const 1)))
    (drop (ref.is_null (ref.func $control)))
    (call $imported (i32.const 0))
    (if (i32.const 0) (then (unreachable)))
    (nop)
    (return (local.get $x)))
  (func $simd (result i32)
    (local $v v128)
    (local.set $v (v128.const i64x2 1 2))
    (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (global.get $v)))
    (local.set $v (i32x4.replace_lane 3 (local.get $v) (i32x4.extract_lane 1 (local.get $v))))
    (local.set $v (v128.load32_zero offset=16 (i32.const 0)))
    (local.set $v (v128.load16_lane 7 (i32.const 0) (local.get $v)))
    (v128.store64_lane align=8 1 (i32.const 0) (local.get $v))
    (v128.store (i32.const 0) (i8x16.splat (i32.const 1)))
    (local.set $v (i16x8.abs (local.get $v)))
    (local.set $v (i32x4.dot_i16x8_s (local.get $v) (local.get $v)))
    (local.set $v (f64x2.promote_low_f32x4 (local.get $v)))
    (local.set $v (f64x2.convert_low_i32x4_u (local.get $v)))
    (local.set $v (i64x2.extmul_high_i32x4_u (local.get $v) (local.get $v)))
    (i32.add (i64x2.all_true (local.get $v)) (i8x16.bitmask (local.get $v))))
  (export "control" (func $control))
  (start $start)
  (func $start))
`

// TestPrecheckFeatures checks that a module using every kind of
// immediate in WebAssembly 2.0, with its tables' maxima within the cap,
// passes unchanged and compiles.
func TestPrecheckFeatures(t *testing.T) {
	in := wat.Assemble(t, featuresText)
	out, err := precheck(in, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatal("precheck rewrote a module that needed no rewriting")
	}
	if err := compileModule(t, out); err != nil {
		t.Fatal(err)
	}
}

// TestPrecheckTruncated gives precheck every prefix of a valid module,
// and the module with each byte flipped: it must not panic.
func TestPrecheckTruncated(t *testing.T) {
	in := wat.Assemble(t, featuresText)
	for n := range len(in) {
		precheck(in[:n], 1<<16)
		b := bytes.Clone(in)
		for _, c := range []byte{0x00, 0x7f, 0x80, 0xff} {
			b[n] = c
			precheck(b, 1<<16)
		}
	}
}
