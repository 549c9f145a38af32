package promtext_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/promtext"
)

func TestWriter(t *testing.T) {
	var w promtext.Writer
	w.Family("tern_plans_total", "Plans by outcome.\nSecond line", promtext.Counter)
	w.Sample(promtext.L("outcome", "found"), 3)
	w.Sample(promtext.L("outcome", `we"ird\`+"\n"), 1)
	w.Family("tern_call_seconds", "Module call time.", promtext.Histogram)
	h := promtext.NewHist(0.01, 0.1, 1)
	for _, v := range []float64{0.005, 0.05, 0.05, 2} {
		h.Observe(v)
	}
	w.Histogram(promtext.L("module", "relay"), h.Snapshot())
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP tern_plans_total Plans by outcome.\nSecond line
# TYPE tern_plans_total counter
tern_plans_total{outcome="found"} 3
tern_plans_total{outcome="we\"ird\\\n"} 1
# HELP tern_call_seconds Module call time.
# TYPE tern_call_seconds histogram
tern_call_seconds_bucket{module="relay",le="0.01"} 1
tern_call_seconds_bucket{module="relay",le="0.1"} 3
tern_call_seconds_bucket{module="relay",le="1"} 3
tern_call_seconds_bucket{module="relay",le="+Inf"} 4
tern_call_seconds_sum{module="relay"} 2.105
tern_call_seconds_count{module="relay"} 4
`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}

func TestWriterRefuses(t *testing.T) {
	for name, fill := range map[string]func(w *promtext.Writer){
		"bad name":     func(w *promtext.Writer) { w.Family("9lives", "", promtext.Gauge) },
		"twice":        func(w *promtext.Writer) { w.Family("a", "", promtext.Gauge); w.Family("a", "", promtext.Gauge) },
		"bad label":    func(w *promtext.Writer) { w.Family("a", "", promtext.Gauge); w.Sample(promtext.L("__x", "1"), 1) },
		"no family":    func(w *promtext.Writer) { w.Sample(nil, 1) },
		"colon label":  func(w *promtext.Writer) { w.Family("a", "", promtext.Gauge); w.Sample(promtext.L("a:b", "1"), 1) },
		"empty name":   func(w *promtext.Writer) { w.Family("", "", promtext.Gauge) },
		"dash in name": func(w *promtext.Writer) { w.Family("a-b", "", promtext.Gauge) },
	} {
		var w promtext.Writer
		fill(&w)
		if _, err := w.Bytes(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ternd.prom")
	for _, body := range []string{"a 1\n", "a 2\n"} {
		if err := promtext.WriteFile(p, []byte(body)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != body {
			t.Fatalf("read %q, %v; want %q", got, err, body)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	if err := promtext.WriteFile(filepath.Join(dir, "missing", "x.prom"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v", err)
	}
}
