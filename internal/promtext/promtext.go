package promtext

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Type is a metric family's type.
type Type string

// The types this package writes.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Label is one name="value" pair of a sample.
type Label struct{ Name, Value string }

// L builds labels from name, value pairs: L("module", "relay", "job", "switch").
// An odd count panics: it is a programming error.
func L(pairs ...string) []Label {
	if len(pairs)%2 != 0 {
		panic("promtext.L: odd number of arguments")
	}
	ls := make([]Label, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		ls = append(ls, Label{pairs[i], pairs[i+1]})
	}
	return ls
}

// Writer collects families and writes them in the text format. Families
// are written in the order they were started; a family's samples in the
// order added. The zero Writer is ready to use.
type Writer struct {
	buf  bytes.Buffer
	seen map[string]bool
	cur  string
	err  error
}

// Family starts a family: its HELP and TYPE lines. A name used twice, or
// not a valid metric name, is an error that Bytes and WriteTo return.
func (w *Writer) Family(name, help string, t Type) {
	if w.err != nil {
		return
	}
	if !validName(name) {
		w.err = fmt.Errorf("promtext: %q is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", name)
		return
	}
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if w.seen[name] {
		w.err = fmt.Errorf("promtext: family %s written twice", name)
		return
	}
	w.seen[name] = true
	w.cur = name
	fmt.Fprintf(&w.buf, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, t)
}

// Sample adds one sample to the current family.
func (w *Writer) Sample(labels []Label, v float64) {
	w.sample(w.cur, labels, v)
}

func (w *Writer) sample(name string, labels []Label, v float64) {
	if w.err != nil {
		return
	}
	if w.cur == "" {
		w.err = fmt.Errorf("promtext: a sample before any family")
		return
	}
	w.buf.WriteString(name)
	if len(labels) > 0 {
		w.buf.WriteByte('{')
		for i, l := range labels {
			if !validLabel(l.Name) {
				w.err = fmt.Errorf("promtext: %q is not a label name", l.Name)
				return
			}
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.buf.WriteString(l.Name)
			w.buf.WriteString(`="`)
			w.buf.WriteString(escapeValue(l.Value))
			w.buf.WriteByte('"')
		}
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(formatFloat(v))
	w.buf.WriteByte('\n')
}

// Histogram adds a histogram's samples (its _bucket, _sum and _count) to
// the current family, which must be of type Histogram.
func (w *Writer) Histogram(labels []Label, h HistogramSnapshot) {
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		w.sample(w.cur+"_bucket", append(labels[:len(labels):len(labels)], Label{"le", formatFloat(b)}), float64(cum))
	}
	w.sample(w.cur+"_bucket", append(labels[:len(labels):len(labels)], Label{"le", "+Inf"}), float64(h.Count))
	w.sample(w.cur+"_sum", labels, h.Sum)
	w.sample(w.cur+"_count", labels, float64(h.Count))
}

// Bytes returns what was written, or the first error.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf.Bytes(), nil
}

// WriteTo writes what was written to dst.
func (w *Writer) WriteTo(dst io.Writer) (int64, error) {
	b, err := w.Bytes()
	if err != nil {
		return 0, err
	}
	n, err := dst.Write(b)
	return int64(n), err
}

// ContentType is the text format's media type, for an HTTP response.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteFile writes b to path atomically (a temporary file in the same
// directory, synced, then renamed), so node_exporter's textfile collector
// never reads half a file. The file is readable by all (0644).
func WriteFile(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("promtext: writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("promtext: writing %s: %w", path, err)
	}
	return nil
}

// HistogramSnapshot is a histogram's counts at one moment: Counts[i]
// observations fell in (Bounds[i-1], Bounds[i]]; Count includes those
// above the last bound.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
	Max    float64
}

// Hist is a histogram with fixed bounds, safe for concurrent use.
type Hist struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
	max    float64
}

// NewHist returns a histogram with the given upper bounds, sorted
// ascending.
func NewHist(bounds ...float64) *Hist {
	b := append([]float64(nil), bounds...)
	sort.Float64s(b)
	return &Hist{bounds: b, counts: make([]uint64, len(b))}
}

// Observe records v.
func (h *Hist) Observe(v float64) {
	h.mu.Lock()
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v
	if i < len(h.counts) {
		h.counts[i]++
	}
	h.count++
	h.sum += v
	h.max = max(h.max, v)
	h.mu.Unlock()
}

// Snapshot returns the histogram's counts now.
func (h *Hist) Snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HistogramSnapshot{Bounds: h.bounds, Counts: append([]uint64(nil), h.counts...), Count: h.count, Sum: h.sum, Max: h.max}
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeValue(s string) string { return valueEscaper.Replace(s) }

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r == ':' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

func validLabel(s string) bool {
	return validName(s) && !strings.Contains(s, ":") && !strings.HasPrefix(s, "__")
}
