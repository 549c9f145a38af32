package wasmhost

import (
	"errors"
	"fmt"
)

// MaxModuleSize bounds a module's bytes. tern's Go modules are 3–4 MiB.
const MaxModuleSize = 32 << 20

const (
	// maxLocals is the most locals a function may declare: wazero
	// allocates them all before reading the body, and the spec lets an
	// engine impose such a limit.
	maxLocals = 50000
	// maxNesting is how deep blocks may nest in one function: it bounds
	// the control stacks wazero's validator and compiler keep. Go's
	// compiler nests a block per call a function makes, to resume it
	// after a stack switch: 549 deep in the largest function of the Go
	// runtime, which every Go module carries, and a function with more
	// calls nests deeper. Nesting alone costs wazero linear memory (65,536
	// levels: 373 MiB, 5.5 s); what costs superlinear compile time (merges
	// times locals read) no count catches, and the compile child bounds.
	maxNesting = 16384
	// maxTables is how many tables (imported and defined) a module may
	// have. Each may hold maxTableEntries, so this bounds what all of them
	// hold together. Toolchains emit one, two with reference types.
	maxTables = 16
)

// precheck walks every section of a module before wazero decodes it and
// refuses what would make wazero, or an instance of the module, allocate
// far more than the module's size.
//
// wazero 1.12 allocates a vector's declared length before reading its
// entries, at every level: a section's item count, a type's parameter
// list, an element segment's init vector, a name's bytes, a data segment,
// the maps of the name section. A 1 KiB module declaring 2^32 of any of
// them makes it ask for tens of GiB, and the Go runtime's out-of-memory
// error kills the agent; no recover catches it. Since every entry takes
// at least one byte, a count no larger than the bytes left where it is
// declared keeps all of these within a small multiple of the module's
// size, so precheck checks each count before reading what it counts.
// Inside code bodies it decodes instructions, to bound br_table target
// lists and block nesting and to refuse opcodes the runtime does not
// know (wazero would refuse them later, without saying where).
//
// The grammar followed is wazero's decoder's for the core features it
// enables by default (api.CoreFeaturesV2: no threads, tail calls,
// exception handling or GC instructions). Where wazero decodes something
// its own way (a SIMD opcode is one byte, then the LEB continuation byte
// 0x01 reads as a nop), precheck follows wazero, and refuses encodings on
// which the two could disagree about where an instruction ends.
//
// Tables are the other way a small module takes much memory: wazero
// allocates a table's minimum at instantiation and lets table.grow reach
// its maximum, or 2^32 entries when it has none. A table whose minimum is
// above maxTableEntries is refused; one whose maximum is absent or above
// it has its maximum lowered to maxTableEntries, so that table.grow past
// it fails inside the module (returns -1). precheck returns the module to
// compile: wasm itself when nothing was rewritten, or a copy with the
// new table limits.
//
// precheck also merges runs of small data segments into one segment each
// (mergeData): a Go module has tens of thousands of them, which wazero
// keeps, decodes and applies one by one, for every start and instance.
//
// What precheck does not bound is the compiler's own work, which is
// superlinear in some shapes of control flow: each local read after many
// if/end merges, or inside deeply nested loops, costs wazero's SSA
// builder memory per merge or loop (a 27 KB function with 3000 of each
// made it allocate 1.6 GiB over 77 s). Counting bytes cannot tell those
// from the large functions compilers emit; compiling in a child process
// under a memory and time limit (Isolation) bounds them.
func precheck(wasm []byte, maxTableEntries uint32) ([]byte, error) {
	return walkModule(wasm, maxTableEntries)
}

func walkModule(wasm []byte, maxTableEntries uint32) ([]byte, error) {
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("module is %d bytes, more than the %d allowed", len(wasm), MaxModuleSize)
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly binary (no \\0asm header)")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("not a core WebAssembly module: version % x, want 01 00 00 00", wasm[4:8])
	}
	w := walker{maxTableEntries: maxTableEntries}
	r := reader{b: wasm[8:], off: 8}
	for len(r.b) > 0 {
		start := r.off
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d at offset %d: size: %w", id, start, err)
		}
		if int64(size) > int64(len(r.b)) {
			return nil, fmt.Errorf("section %d at offset %d declares %d bytes, %d remain", id, start, size, len(r.b))
		}
		sec := r.sub(int(size))
		w.section = section{start: start, body: sec.off, end: sec.off + len(sec.b)}
		if err := w.walk(id, &sec); err != nil {
			return nil, err
		}
		// wazero refuses this too, but only after decoding what follows
		// the last entry, which precheck has not checked.
		if len(sec.b) > 0 {
			return nil, fmt.Errorf("%s section has %d bytes after its last entry", sectionName(id), len(sec.b))
		}
	}
	return w.rewrite(wasm)
}

// section locates a section in the module, for rewriting.
type section struct{ start, body, end int }

// table is a table's limits and where they are encoded in the module.
type table struct {
	name       string  // for messages: "table 1", "table 0 (imported "env"."t")"
	section    section // the one it is declared in
	start, end int     // offsets of the limits' encoding
	min, max   uint32
	hasMax     bool
}

// walker holds what walking one module learns along the way.
type walker struct {
	maxTableEntries uint32
	section         section // the one being walked
	tables          []table // at most maxTables
	importedFuncs   uint32  // function indices start after these
	dataCount       bool    // the module has a data count section
	dataSec         dataSection
}

func sectionName(id byte) string {
	names := [...]string{"custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "data count"}
	if int(id) < len(names) {
		return names[id]
	}
	return fmt.Sprintf("unknown (id %d)", id)
}

func (w *walker) walk(id byte, r *reader) error {
	switch id {
	case 0:
		return w.custom(r)
	case 1:
		return w.types(r)
	case 2:
		return w.imports(r)
	case 3:
		n, err := r.count("functions")
		for i := uint32(0); i < n && err == nil; i++ {
			_, err = r.u32()
		}
		return wrap(err, "function section")
	case 4:
		n, err := r.count("tables")
		if err != nil {
			return wrap(err, "table section")
		}
		for i := uint32(0); i < n && err == nil; i++ {
			err = w.tableType(r, "")
		}
		return err
	case 5:
		n, err := r.count("memories")
		for i := uint32(0); i < n && err == nil; i++ {
			_, _, _, err = r.limits()
		}
		return wrap(err, "memory section")
	case 6:
		n, err := r.count("globals")
		if err != nil {
			return wrap(err, "global section")
		}
		for i := uint32(0); i < n; i++ {
			err = r.globalType()
			if err == nil {
				err = r.constExpr()
			}
			if err != nil {
				return wrap(err, fmt.Sprintf("global %d", i))
			}
		}
		return nil
	case 7:
		return w.exports(r)
	case 8:
		_, err := r.u32()
		return wrap(err, "start section")
	case 9:
		return w.elements(r)
	case 10:
		return w.code(r)
	case 11:
		return w.data(r)
	case 12:
		w.dataCount = true
		_, err := r.u32()
		return wrap(err, "data count section")
	case 13:
		return errors.New("module has a tag section: exception handling is not enabled in tern's runtime")
	}
	return fmt.Errorf("module has a section with unknown id %d", id)
}

func (w *walker) custom(r *reader) error {
	name, err := r.name("name")
	if err != nil {
		return wrap(err, "custom section")
	}
	if string(name) != "name" {
		r.b = nil // wazero skips it, or copies it: as many bytes as it has
		return nil
	}
	// wazero reads the subsections it knows by their content, not by their
	// declared sizes, and keeps going by those sizes: each must be exactly
	// as long as it says, or wazero's reading drifts out of the section.
	for len(r.b) > 0 {
		id, _ := r.byte()
		size, err := r.u32()
		if err != nil {
			return wrap(err, "name section")
		}
		if int64(size) > int64(len(r.b)) {
			return fmt.Errorf("name section: subsection %d declares %d bytes, %d remain", id, size, len(r.b))
		}
		sub := r.sub(int(size))
		switch id {
		case 0:
			_, err = sub.name("module name")
			err = wrap(err, "name section")
		case 1:
			err = wrap(sub.nameMap(), "name section: function name map")
		case 2:
			err = localNames(&sub)
		default:
			sub.b = nil
		}
		if err != nil {
			return err
		}
		if len(sub.b) > 0 {
			return fmt.Errorf("name section: subsection %d has %d bytes after its last entry", id, len(sub.b))
		}
	}
	return nil
}

// localNames reads an indirect name map: for each function, the names of
// its locals.
func localNames(r *reader) error {
	n, err := r.count("functions")
	if err != nil {
		return wrap(err, "name section: local name map")
	}
	for i := uint32(0); i < n; i++ {
		fn, err := r.u32()
		if err != nil {
			return wrap(err, fmt.Sprintf("name section: local name map: entry %d", i))
		}
		if err := r.nameMap(); err != nil {
			return wrap(err, fmt.Sprintf("name section: local name map of function %d", fn))
		}
	}
	return nil
}

func (w *walker) types(r *reader) error {
	n, err := r.count("types")
	if err != nil {
		return wrap(err, "type section")
	}
	index := 0 // types in recursion groups count one by one
	for i := uint32(0); i < n; i++ {
		if len(r.b) == 0 || r.b[0] != 0x4e { // not a recursion group: one function type
			if err := r.funcType(); err != nil {
				return wrap(err, fmt.Sprintf("type %d", index))
			}
			index++
			continue
		}
		r.byte()
		k, err := r.count("types")
		if err != nil {
			return wrap(err, fmt.Sprintf("type %d: recursion group", index))
		}
		for j := uint32(0); j < k; j++ {
			if err := r.funcType(); err != nil {
				return wrap(err, fmt.Sprintf("type %d", index))
			}
			index++
		}
	}
	return nil
}

func (w *walker) imports(r *reader) error {
	n, err := r.count("imports")
	if err != nil {
		return wrap(err, "import section")
	}
	for i := uint32(0); i < n; i++ {
		mod, err := r.name("module name")
		if err != nil {
			return wrap(err, fmt.Sprintf("import %d", i))
		}
		name, err := r.name("name")
		if err != nil {
			return wrap(err, fmt.Sprintf("import %d", i))
		}
		kind, err := r.byte()
		switch {
		case err != nil:
		case kind == 0:
			_, err = r.u32()
			w.importedFuncs++
		case kind == 1:
			err = w.tableType(r, fmt.Sprintf(" (imported %.40q.%.40q)", mod, name))
		case kind == 2:
			_, _, _, err = r.limits()
		case kind == 3:
			err = r.globalType()
		default:
			err = fmt.Errorf("kind %#x, which tern's runtime does not support", kind)
		}
		if err != nil {
			return wrap(err, fmt.Sprintf("import %d (%.40q.%.40q)", i, mod, name))
		}
	}
	return nil
}

// tableType reads a table's type and records where its limits are, so
// that limitTables can bound them once every table is known. how says
// where the table comes from, for messages.
func (w *walker) tableType(r *reader, how string) error {
	if len(w.tables) == maxTables {
		return fmt.Errorf("module has more than %d tables", maxTables)
	}
	name := fmt.Sprintf("table %d%s", len(w.tables), how)
	b, err := r.byte()
	if err != nil {
		return wrap(err, name)
	}
	init := b == 0x40 // a table with an initializer: 0x40 0x00 type limits expr
	if init {
		if b, err = r.byte(); err != nil || b != 0 {
			return fmt.Errorf("%s: malformed table initializer prefix", name)
		}
		if b, err = r.byte(); err != nil {
			return wrap(err, name)
		}
	}
	if err := r.refType(b); err != nil {
		return wrap(err, name)
	}
	start := r.off
	flag, min, max, err := r.limits()
	if err != nil {
		return wrap(err, name)
	}
	if flag&2 != 0 {
		return fmt.Errorf("%s is marked shared, which tables cannot be", name)
	}
	w.tables = append(w.tables, table{
		name: name, section: w.section, start: start, end: r.off,
		min: min, max: max, hasMax: flag&1 != 0,
	})
	if init {
		return wrap(r.constExpr(), name)
	}
	return nil
}

func (w *walker) exports(r *reader) error {
	n, err := r.count("exports")
	if err != nil {
		return wrap(err, "export section")
	}
	for i := uint32(0); i < n; i++ {
		_, err := r.name("name")
		var kind byte
		if err == nil {
			kind, err = r.byte()
		}
		if err == nil && kind > 4 {
			err = fmt.Errorf("kind %#x", kind)
		}
		if err == nil {
			_, err = r.u32()
		}
		if err != nil {
			return wrap(err, fmt.Sprintf("export %d", i))
		}
	}
	return nil
}

// elements reads the element section, whose segments come in eight
// encodings: bit 0 passive or declarative, bit 1 an explicit table index
// (active) or declarative, bit 2 expressions rather than function indices.
func (w *walker) elements(r *reader) error {
	n, err := r.count("segments")
	if err != nil {
		return wrap(err, "element section")
	}
	for i := uint32(0); i < n; i++ {
		if err := elementSegment(r); err != nil {
			return wrap(err, fmt.Sprintf("element segment %d", i))
		}
	}
	return nil
}

func elementSegment(r *reader) error {
	flags, err := r.u32()
	if err != nil {
		return err
	}
	if flags > 7 {
		return fmt.Errorf("flags %#x, want 0 to 7", flags)
	}
	active := flags&1 == 0
	if active && flags&2 != 0 {
		if _, err := r.u32(); err != nil { // table index
			return err
		}
	}
	if active {
		if err := r.constExpr(); err != nil {
			return wrap(err, "offset")
		}
	}
	exprs := flags&4 != 0
	if flags != 0 && flags != 4 { // an element kind or a reference type
		b, err := r.byte()
		switch {
		case err != nil:
			return err
		case !exprs && b != 0:
			return fmt.Errorf("element kind %#x, want 0", b)
		case exprs:
			if err := r.refType(b); err != nil {
				return err
			}
		}
	}
	k, err := r.count("entries")
	if err != nil {
		return err
	}
	for j := uint32(0); j < k; j++ {
		if exprs {
			err = r.constExpr()
		} else {
			_, err = r.u32()
		}
		if err != nil {
			return wrap(err, fmt.Sprintf("entry %d", j))
		}
	}
	return nil
}

func (w *walker) data(r *reader) error {
	n, err := r.count("segments")
	if err != nil {
		return wrap(err, "data section")
	}
	w.dataSec.begin(w.section, n)
	for i := uint32(0); i < n; i++ {
		seg := *r
		if err := dataSegment(r); err != nil {
			return wrap(err, fmt.Sprintf("data segment %d", i))
		}
		w.dataSec.add(seg.off, seg.b[:r.off-seg.off])
	}
	return nil
}

func dataSegment(r *reader) error {
	flags, err := r.u32()
	switch {
	case err != nil:
	case flags == 0:
		err = r.constExpr()
	case flags == 1: // passive
	case flags == 2:
		if _, err = r.u32(); err == nil { // memory index
			err = r.constExpr()
		}
	default:
		err = fmt.Errorf("flags %#x, want 0 to 2", flags)
	}
	if err != nil {
		return err
	}
	size, err := r.u32()
	if err != nil {
		return err
	}
	if int64(size) > int64(len(r.b)) {
		return declaresError(fmt.Sprintf("declares %d bytes in %s", size, plural(len(r.b), "byte")))
	}
	r.sub(int(size))
	return nil
}

func (w *walker) code(r *reader) error {
	n, err := r.count("bodies")
	if err != nil {
		return wrap(err, "code section")
	}
	for i := uint32(0); i < n; i++ {
		fn := uint64(w.importedFuncs) + uint64(i) // as tools number them
		size, err := r.u32()
		if err != nil {
			return wrap(err, fmt.Sprintf("function %d", fn))
		}
		if int64(size) > int64(len(r.b)) {
			return fmt.Errorf("function %d declares a body of %d bytes, %d remain", fn, size, len(r.b))
		}
		body := r.sub(int(size))
		if err := body.locals(); err != nil {
			return wrap(err, fmt.Sprintf("function %d", fn))
		}
		if err := body.instructions(fn); err != nil {
			return err
		}
	}
	return nil
}

// rewrite applies maxTableEntries to the tables found (see precheck) and
// merges data segments (mergeData), and returns wasm, or a copy with the
// sections rewritten.
func (w *walker) rewrite(wasm []byte) ([]byte, error) {
	type edit struct {
		sec   section
		size  int                 // of the new body
		write func([]byte) []byte // appends the new body
	}
	var edits []edit // in module order
	for i := 0; i < len(w.tables); {
		sec := w.tables[i].section
		var body []byte
		from := sec.body
		for ; i < len(w.tables) && w.tables[i].section == sec; i++ { // in order, as found
			t := w.tables[i]
			if t.min > w.maxTableEntries {
				return nil, fmt.Errorf("%s declares a minimum of %d entries, more than the %d allowed", t.name, t.min, w.maxTableEntries)
			}
			if t.hasMax && t.max <= w.maxTableEntries {
				continue
			}
			body = append(body, wasm[from:t.start]...)
			body = append(body, 1) // flags: a maximum follows
			body = appendU32(body, t.min)
			body = appendU32(body, w.maxTableEntries)
			from = t.end
		}
		if body != nil {
			body = append(body, wasm[from:sec.end]...)
			edits = append(edits, edit{sec, len(body), func(out []byte) []byte { return append(out, body...) }})
		}
	}
	size := func() int {
		n := len(wasm)
		for _, e := range edits {
			n += 1 + len(appendU32(nil, uint32(e.size))) + e.size - (e.sec.end - e.sec.start)
		}
		return n
	}
	if !w.dataCount {
		if n, ok := w.dataSec.mergedSize(); ok {
			edits = append(edits, edit{w.dataSec.sec, n, func(out []byte) []byte { return w.dataSec.appendMerged(out, wasm) }})
			if size() > MaxModuleSize { // merging is worth no refusal
				edits = edits[:len(edits)-1]
			}
		}
	}
	if len(edits) == 0 {
		return wasm, nil
	}
	if n := size(); n > MaxModuleSize {
		return nil, fmt.Errorf("module is %d bytes with its table limits added, more than the %d allowed", n, MaxModuleSize)
	}
	// Written once, in place: this copy of a Go module is megabytes, and
	// every page of it a fault to take at each start.
	out := make([]byte, 0, size())
	at := 0 // what is copied of wasm
	for _, e := range edits {
		out = append(out, wasm[at:e.sec.start+1]...) // up to the section id
		out = appendU32(out, uint32(e.size))
		out = e.write(out)
		at = e.sec.end
	}
	return append(out, wasm[at:]...), nil
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// wrap says where err happened; nil stays nil.
func wrap(err error, at string) error {
	if err == nil {
		return nil
	}
	if d, ok := err.(declaresError); ok { // now a sentence: "type 3 declares..."
		return errors.New(at + " " + string(d))
	}
	return fmt.Errorf("%s: %w", at, err)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// declaresError is a count or a length larger than the bytes left for
// what it counts: "declares 4294967295 entries in 12 bytes". wrap puts
// what declared it in front, as the subject.
type declaresError string

func (e declaresError) Error() string { return string(e) }

var errShort = errors.New("cut short")

// reader reads the binary format from b, which starts at offset off in
// the module. Its methods consume what they read; on error, what is left
// is unspecified.
type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	r.off++
	return c, nil
}

// sub returns the next n bytes (n <= len(r.b)) as a reader of their own,
// and skips them.
func (r *reader) sub(n int) reader {
	s := reader{b: r.b[:n:n], off: r.off}
	r.b = r.b[n:]
	r.off += n
	return s
}

func (r *reader) skip(n int) error {
	if n > len(r.b) {
		return errShort
	}
	r.sub(n)
	return nil
}

// u32 reads an unsigned LEB128 number of at most 32 bits, refusing the
// encodings wazero refuses: more than five bytes, or bits past the 32nd.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, errors.New("number cut short")
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i == 4 && c&0xf0 != 0 {
				break
			}
			return v, nil
		}
	}
	return 0, errors.New("number longer than 32 bits")
}

// signed skips a signed LEB128 number of at most n bytes. Its value does
// not matter here, and wazero checks its unused bits.
func (r *reader) signed(n int) error {
	for i := 0; i < n; i++ {
		c, err := r.byte()
		if err != nil {
			return errors.New("number cut short")
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return fmt.Errorf("number longer than %d bytes", n)
}

// count reads a vector's length and refuses it if the vector could not
// fit in what is left: every entry takes at least a byte.
func (r *reader) count(what string) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, fmt.Errorf("number of %s: %w", what, err)
	}
	if int64(n) > int64(len(r.b)) {
		return 0, declaresError(fmt.Sprintf("declares %d %s in %s", n, what, plural(len(r.b), "byte")))
	}
	return n, nil
}

// name reads a length-prefixed string (wazero checks it is UTF-8).
func (r *reader) name(what string) ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, fmt.Errorf("length of %s: %w", what, err)
	}
	if int64(n) > int64(len(r.b)) {
		return nil, declaresError(fmt.Sprintf("declares a %s of %d bytes in %s", what, n, plural(len(r.b), "byte")))
	}
	s := r.sub(int(n))
	return s.b, nil
}

// nameMap reads a vector of index and name pairs.
func (r *reader) nameMap() error {
	n, err := r.count("names")
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		_, err := r.u32()
		if err == nil {
			_, err = r.name("name")
		}
		if err != nil {
			return wrap(err, fmt.Sprintf("entry %d", i))
		}
	}
	return nil
}

func (r *reader) funcType() error {
	form, err := r.byte()
	if err != nil {
		return err
	}
	if form != 0x60 {
		return fmt.Errorf("form %#x: only function types (0x60) are supported", form)
	}
	for _, what := range [...]string{"parameters", "results"} {
		n, err := r.count(what)
		if err != nil {
			return err
		}
		for i := uint32(0); i < n; i++ {
			if err := r.valType(); err != nil {
				return wrap(err, what)
			}
		}
	}
	return nil
}

// valType reads a value type: one byte, or a reference type prefix and a
// heap type, as wazero decodes them.
func (r *reader) valType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	switch b {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69: // i32 i64 f32 f64 v128 funcref externref exnref
		return nil
	case 0x63, 0x64: // (ref null ht), (ref ht)
		return r.signed(5)
	}
	return fmt.Errorf("invalid value type %#x", b)
}

// blockType reads a block's type, a signed LEB128 number of 33 bits: a
// value type or, not negative, a type index. wazero compares the number,
// not its first byte, with the reference type prefixes, and reads a heap
// type after them.
func (r *reader) blockType() error {
	v, err := r.s33()
	if err == nil && (v == -29 || v == -28) { // 0x63 (ref null ht), 0x64 (ref ht)
		err = r.signed(5)
	}
	return err
}

// s33 reads a signed LEB128 number of at most 33 bits, in at most five
// bytes.
func (r *reader) s33() (int64, error) {
	var v int64
	for i := 0; i < 5; i++ {
		c, err := r.byte()
		if err != nil {
			return 0, errors.New("number cut short")
		}
		v |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if shift := 7 * (i + 1); c&0x40 != 0 {
				v |= -1 << shift // sign extension
			}
			if v < -1<<32 || v >= 1<<32 {
				break
			}
			return v, nil
		}
	}
	return 0, errors.New("number longer than 33 bits")
}

// refType finishes reading a reference type whose first byte is b.
func (r *reader) refType(b byte) error {
	switch b {
	case 0x70, 0x6f:
		return nil
	case 0x63, 0x64:
		return r.signed(5)
	}
	return fmt.Errorf("invalid reference type %#x", b)
}

func (r *reader) globalType() error {
	if err := r.valType(); err != nil {
		return err
	}
	mut, err := r.byte()
	if err == nil && mut > 1 {
		err = fmt.Errorf("invalid mutability %#x", mut)
	}
	return err
}

// limits reads a memory's or table's limits: flags (bit 0: a maximum
// follows, bit 1: shared), a minimum, maybe a maximum.
func (r *reader) limits() (flag byte, min, max uint32, err error) {
	if flag, err = r.byte(); err != nil {
		return
	}
	if flag > 3 {
		return 0, 0, 0, fmt.Errorf("invalid limits flags %#x", flag)
	}
	if min, err = r.u32(); err != nil || flag&1 == 0 {
		return
	}
	max, err = r.u32()
	return
}

// constExpr reads a constant expression, with the instructions wazero
// allows in one, up to its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return errors.New("constant expression cut short")
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41: // i32.const
			err = r.signed(5)
		case 0x42: // i64.const
			err = r.signed(10)
		case 0x43: // f32.const
			err = r.skip(4)
		case 0x44: // f64.const
			err = r.skip(8)
		case 0x23, 0xd0, 0xd2: // global.get, ref.null, ref.func
			_, err = r.u32()
		case 0xfd: // v128.const
			var sub byte
			if sub, err = r.byte(); err == nil && sub != 0x0c {
				return fmt.Errorf("instruction 0xfd %#x is not allowed in a constant expression", sub)
			}
			if err == nil {
				err = r.skip(16)
			}
		default:
			return fmt.Errorf("instruction %#x is not allowed in a constant expression", op)
		}
		if err != nil {
			return wrap(err, "constant expression")
		}
	}
}

// locals reads a function's locals declarations and bounds their total.
func (r *reader) locals() error {
	n, err := r.count("local declarations")
	if err != nil {
		return err
	}
	total := uint64(0)
	for i := uint32(0); i < n; i++ {
		count, err := r.u32()
		if err == nil {
			err = r.valType()
		}
		if err != nil {
			return wrap(err, "locals")
		}
		if total += uint64(count); total > maxLocals {
			return declaresError(fmt.Sprintf("declares more than %d locals", maxLocals))
		}
	}
	return nil
}

// Immediates of an instruction, by kind.
const (
	opUnknown  = iota
	opNone     // no immediate
	opBlock    // a block type; opens a block
	opEnd      // closes a block, or the function
	opIndex    // one u32 (an index, or a reserved 0)
	opIndex2   // two u32s
	opBrTable  // a vector of labels, then a label
	opMemarg   // alignment and offset
	opI32      // signed LEB128, 32 bits
	opI64      // signed LEB128, 64 bits
	opF32      // 4 bytes
	opF64      // 8 bytes
	opSelectT  // a vector of one value type
	opMisc     // prefix 0xfc: a u32 opcode, then its immediates
	opSIMD     // prefix 0xfd: a one-byte opcode, then its immediates
	opV128     // 16 bytes
	opLane     // a lane index byte
	opMemLane  // memarg, then a lane index byte
	opSIMDNone // a SIMD instruction without immediates
)

// opcodes gives each single-byte opcode the kind of its immediates.
var opcodes = func() (t [256]byte) {
	set := func(kind byte, ops ...int) {
		for _, op := range ops {
			t[op] = kind
		}
	}
	span := func(kind byte, from, to int) {
		for op := from; op <= to; op++ {
			t[op] = kind
		}
	}
	set(opNone, 0x00, 0x01, 0x05, 0x0f, 0x1a, 0x1b, 0xd1) // unreachable nop else return drop select ref.is_null
	span(opBlock, 0x02, 0x04)                             // block loop if
	set(opEnd, 0x0b)
	set(opIndex, 0x0c, 0x0d, 0x10, 0xd0, 0xd2) // br br_if call ref.null ref.func
	set(opIndex2, 0x11)                        // call_indirect
	set(opBrTable, 0x0e)
	set(opSelectT, 0x1c)
	span(opIndex, 0x20, 0x26) // local.*, global.*, table.get/set
	span(opMemarg, 0x28, 0x3e)
	span(opIndex, 0x3f, 0x40) // memory.size/grow with their reserved byte
	set(opI32, 0x41)
	set(opI64, 0x42)
	set(opF32, 0x43)
	set(opF64, 0x44)
	span(opNone, 0x45, 0xc4) // numeric, and sign extension
	set(opMisc, 0xfc)
	set(opSIMD, 0xfd)
	return t
}()

// simdOpcodes gives each SIMD opcode (after 0xfd) the kind of its
// immediates: those wazero 1.12 implements, the final SIMD proposal.
var simdOpcodes = func() (t [256]byte) {
	for op := range t {
		t[op] = opSIMDNone
	}
	for op := 0x00; op <= 0x0b; op++ { // loads and v128.store
		t[op] = opMemarg
	}
	t[0x0c], t[0x0d] = opV128, opV128  // v128.const, i8x16.shuffle
	for op := 0x15; op <= 0x22; op++ { // extract_lane, replace_lane
		t[op] = opLane
	}
	for op := 0x54; op <= 0x5b; op++ { // load_lane, store_lane
		t[op] = opMemLane
	}
	t[0x5c], t[0x5d] = opMemarg, opMemarg // load32_zero, load64_zero
	for _, op := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		t[op] = opUnknown
	}
	return t
}()

// instructions reads a function body's instructions, up to the end that
// closes the function, which must be its last byte.
func (r *reader) instructions(fn uint64) error {
	depth := 0 // blocks open inside the function's own
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return fmt.Errorf("function %d: body ends inside a block (an end is missing)", fn)
		}
		kind := opcodes[op]
		switch kind {
		case opMisc:
			var sub uint32
			if sub, err = r.u32(); err != nil {
				break
			}
			switch {
			case sub <= 7: // saturating truncations
				kind = opNone
			case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop memory.fill elem.drop table.grow/size/fill
				kind = opIndex
			case sub <= 14: // memory.init memory.copy table.init table.copy
				kind = opIndex2
			default:
				return fmt.Errorf("function %d: unknown instruction 0xfc %d at offset %d", fn, sub, at)
			}
		case opSIMD:
			var sub byte
			if sub, err = r.byte(); err != nil {
				break
			}
			// The opcode is a LEB128 u32; wazero reads its first byte only,
			// and the second of those above 0x7f, 0x01, as a nop.
			if sub >= 0x80 {
				if c, err := r.byte(); err != nil || c != 0x01 {
					return fmt.Errorf("function %d: SIMD opcode at offset %d is not encoded as wazero reads it", fn, at)
				}
			}
			if kind = simdOpcodes[sub]; kind == opUnknown {
				return fmt.Errorf("function %d: unknown instruction 0xfd %#x at offset %d", fn, sub, at)
			}
		case opUnknown:
			return fmt.Errorf("function %d: unknown instruction %#x at offset %d (tern's runtime supports WebAssembly 2.0: no threads, tail calls, exception handling or GC)", fn, op, at)
		}
		if err != nil {
			return fmt.Errorf("function %d: instruction at offset %d: %w", fn, at, err)
		}
		switch kind {
		case opBlock:
			if depth++; depth > maxNesting {
				return fmt.Errorf("function %d nests blocks %d deep (at most %d)", fn, depth, maxNesting)
			}
			err = r.blockType()
		case opEnd:
			if depth--; depth < 0 {
				if len(r.b) > 0 {
					return fmt.Errorf("function %d: %d bytes follow the end of its body", fn, len(r.b))
				}
				return nil
			}
		case opIndex:
			_, err = r.u32()
		case opIndex2:
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
		case opBrTable:
			var n uint32
			if n, err = r.count("targets"); err != nil {
				return wrap(err, fmt.Sprintf("function %d: br_table at offset %d", fn, at))
			}
			for i := uint32(0); i <= n && err == nil; i++ { // the targets and the default
				_, err = r.u32()
			}
		case opMemarg, opMemLane:
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
			if err == nil && kind == opMemLane {
				_, err = r.byte()
			}
		case opI32:
			err = r.signed(5)
		case opI64:
			err = r.signed(10)
		case opF32:
			err = r.skip(4)
		case opF64:
			err = r.skip(8)
		case opV128:
			err = r.skip(16)
		case opLane:
			_, err = r.byte()
		case opSelectT:
			var n byte
			if n, err = r.byte(); err == nil && n != 1 {
				return fmt.Errorf("function %d: select at offset %d has %d types, want 1", fn, at, n)
			}
			if err == nil {
				err = r.valType()
			}
		}
		if err != nil {
			return fmt.Errorf("function %d: instruction %#x at offset %d: %w", fn, op, at, err)
		}
	}
}
