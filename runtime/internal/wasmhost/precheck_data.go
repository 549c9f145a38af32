package wasmhost

import (
	"cmp"
	"slices"
)

// Merging data segments.
//
// Go's linker writes a module's data as one segment per run of non-zero
// bytes: 37,622 segments of 25 bytes on average in the relay module,
// 16 bytes apart. wazero keeps each as a struct (with its own small
// allocation for its bytes), each instance a slice header per segment,
// and every instantiation copies them one by one: 4 MiB of the agent's
// heap and a third of an instantiation, for 0.9 MiB of data. mergeData
// writes each run of segments that lie close together in memory as one
// segment, the gaps between them as zeros.
//
// That changes nothing an instance can see, under these conditions:
//   - no data count section: without one, no instruction may name a data
//     segment (memory.init and data.drop need it), so their number and
//     order are not observable;
//   - every active segment's offset is a constant (i32.const), so that
//     where each lands is known, and no two active segments overlap;
//   - two segments merge only when they are next to each other both in
//     the section and in memory, so that the zeros written into the gap
//     between them overwrite no other segment's bytes: memory there is
//     zero before instantiation, and stays so until then;
//   - a merged segment ends where its last part did: an instantiation
//     whose segments do not fit in memory fails with it, as it would
//     have without (an instance whose instantiation failed is dropped,
//     whatever of its memory was written).
//
// The zeros are bounded: a gap is at most maxDataGap bytes, and the
// merged section at most twice the original (and 4 KiB).

// maxDataGap is the largest gap between two segments merged, in bytes.
// Each segment costs wazero about 100 bytes of heap besides its data,
// and another 24 per instance: a gap of this many zeros costs less.
const maxDataGap = 64

var zeros [maxDataGap]byte

// maxMergedSegments bounds the segments considered for merging: the
// bookkeeping costs 16 bytes each. A module with more is left as it is.
const maxMergedSegments = 1 << 20

// dataSection is what precheck learns of the data section for merging.
type dataSection struct {
	sec   section
	segs  []dataSeg // nil: not mergeable
	joins []bool    // the merge mergedSize planned
}

// dataSeg is one data segment: where its encoding lies in the module,
// and, for an active segment of memory 0 at a constant offset, where its
// bytes go in memory.
type dataSeg struct {
	start, end int // its encoding in the module
	init       int // where its bytes start in the module
	at         uint32
	size       uint32
	fixed      bool // active in memory 0 at a constant offset
}

func (d *dataSection) begin(sec section, n uint32) {
	d.sec = sec
	if n <= maxMergedSegments {
		d.segs = make([]dataSeg, 0, n)
	}
}

// add records the segment encoded in b, at offset off of the module. b
// passed dataSegment.
func (d *dataSection) add(off int, b []byte) {
	if d.segs == nil {
		return
	}
	r := reader{b: b, off: off}
	s := dataSeg{start: off, end: off + len(b)}
	flags, _ := r.u32()
	mem := uint32(0)
	if flags == 2 {
		mem, _ = r.u32()
	}
	at, constant := r.i32Const()
	if flags == 1 || mem != 0 || !constant {
		if flags != 1 {
			d.segs = nil // an active segment whose bytes go where precheck cannot tell
			return
		}
		at = 0
	} else {
		s.fixed = true
	}
	size, _ := r.u32()
	s.at, s.size, s.init = at, size, r.off
	if s.fixed && uint64(at)+uint64(size) >= 1<<32 {
		d.segs = nil // ends at the top of a 4 GiB memory, or past it: left alone
		return
	}
	d.segs = append(d.segs, s)
}

// i32Const reads a constant expression that is exactly i32.const and
// end, and returns its value as an offset (wazero reads it unsigned);
// false if the expression is anything else.
func (r *reader) i32Const() (uint32, bool) {
	e := *r
	op, err := r.byte()
	if err != nil || op != 0x41 {
		*r = e
		r.constExpr()
		return 0, false
	}
	var v int64
	var shift uint
	for {
		c, err := r.byte()
		if err != nil {
			return 0, false
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			break
		}
	}
	if end, err := r.byte(); err != nil || end != 0x0b {
		*r = e
		r.constExpr()
		return 0, false
	}
	return uint32(int32(v)), true
}

// plan works out which segments merge: the runs, as joins[i] (segment
// i+1 continues segment i's run), and how many merges there are; 0 when
// nothing merges (or merging is not safe).
func (d *dataSection) plan() (joins []bool, merges int) {
	segs := d.segs
	if len(segs) < 2 {
		return nil, 0
	}
	// next[i]: the segment after segment i in memory, if the two do not
	// overlap; -1 for the last. Any overlap: nothing is merged.
	order := make([]int32, 0, len(segs))
	for i, s := range segs {
		if s.fixed && s.size > 0 {
			order = append(order, int32(i))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(segs[a].at, segs[b].at) })
	next := make([]int32, len(segs))
	for i := range next {
		next[i] = -1
	}
	for k := 1; k < len(order); k++ {
		a, b := segs[order[k-1]], segs[order[k]]
		if uint64(a.at)+uint64(a.size) > uint64(b.at) {
			return nil, 0
		}
		next[order[k-1]] = order[k]
	}
	joins = make([]bool, len(segs))
	for i := 0; i+1 < len(segs); i++ {
		a, b := segs[i], segs[i+1]
		if a.size > 0 && b.size > 0 && next[i] == int32(i+1) && b.at-(a.at+a.size) <= maxDataGap {
			joins[i] = true
			merges++
		}
	}
	return joins, merges
}

// mergedSize plans the merge and returns the size of the merged section's
// body; false when nothing merges, or the zeros would more than double
// the section.
func (d *dataSection) mergedSize() (int, bool) {
	joins, merges := d.plan()
	if merges == 0 {
		return 0, false
	}
	d.joins = joins
	segs := d.segs
	n := len(appendU32(nil, uint32(len(segs)-merges)))
	d.runs(func(i, j int) {
		if i == j {
			n += segs[i].end - segs[i].start
			return
		}
		first, last := segs[i], segs[j]
		size := last.at + last.size - first.at
		n += 2 + len(appendS32(nil, int32(first.at))) + 1 + len(appendU32(nil, size)) + int(size)
	})
	if n > 2*(d.sec.end-d.sec.body)+4096 {
		return 0, false
	}
	return n, true
}

// appendMerged appends the merged section's body (after mergedSize).
func (d *dataSection) appendMerged(out, wasm []byte) []byte {
	segs, joins := d.segs, d.joins
	out = appendU32(out, uint32(len(segs)-countTrue(joins)))
	d.runs(func(i, j int) {
		if i == j {
			out = append(out, wasm[segs[i].start:segs[i].end]...)
			return
		}
		first, last := segs[i], segs[j]
		out = append(out, 0, 0x41) // active, memory 0; i32.const
		out = appendS32(out, int32(first.at))
		out = append(out, 0x0b) // end
		out = appendU32(out, last.at+last.size-first.at)
		for k := i; k <= j; k++ {
			s := segs[k]
			if k > i {
				out = append(out, zeros[:s.at-(segs[k-1].at+segs[k-1].size)]...)
			}
			out = append(out, wasm[s.init:s.init+int(s.size)]...)
		}
	})
	return out
}

// runs calls fn with each run of segments the plan joins into one, from
// segment i to segment j (i == j: a segment left as it is), in order.
func (d *dataSection) runs(fn func(i, j int)) {
	for i := 0; i < len(d.segs); {
		j := i
		for d.joins[j] {
			j++
		}
		fn(i, j)
		i = j + 1
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// appendS32 appends v as a signed LEB128 number.
func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
