package exporter_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tern-iot/tern/internal/exporter"
)

// grafanaDashboard is the dashboard that ships with tern exporter.
var grafanaDashboard = filepath.Join("..", "..", "docs", "grafana", "tern-fleet.json")

// terndMetrics are the agreed families of ternd's /metrics and textfile
// (docs/observability.md); a histogram's series add _bucket, _sum, _count.
var terndMetrics = []string{
	"ternd_info", "ternd_plans_total", "ternd_tasks_total", "ternd_module_call_seconds",
	"ternd_rollbacks_total", "ternd_refusals_total", "ternd_reconnects_total", "ternd_outbox_depth",
	"ternd_converged", "ternd_target_version", "ternd_last_converged_timestamp_seconds",
	"ternd_start_time_seconds", "ternd_resident_memory_bytes", "ternd_disk_free_bytes",
}

// dashboardExprs returns every PromQL expression of the dashboard: its
// panels' targets and its variables' queries, by where they are.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", grafanaDashboard, err)
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[p.Title+"/"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, v := range d.Templating.List {
		// label_values(metric, label) is Grafana's, not PromQL: its metric counts.
		if m := regexp.MustCompile(`^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*),\s*[a-zA-Z_]+\)$`).FindStringSubmatch(v.Query.Query); m != nil {
			out["variable "+v.Name] = m[1]
		} else {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, v.Query.Query)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s: only %d expressions; did the layout change?", grafanaDashboard, len(out))
	}
	return out
}

// promqlWords are PromQL's keywords and aggregation modifiers, which look
// like metric names to metricNames.
var promqlWords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "inf", "nan"}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupings = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdents    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
)

// metricNames returns the metric names expr uses: identifiers that are
// not functions, keywords, label lists, strings or ranges.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, "")
	s = promRanges.ReplaceAllString(s, "")
	s = promGroupings.ReplaceAllString(s, "")
	var out []string
	for _, m := range promIdents.FindAllStringSubmatch(s, -1) {
		name := strings.TrimSpace(m[0])
		if m[1] != "" || slices.Contains(promqlWords, strings.ToLower(name)) {
			continue // a function, or a keyword
		}
		out = append(out, name)
	}
	return out
}

// The Grafana dashboard names only metrics that exist: those the exporter
// serves and those ternd serves. Renaming one fails here, not on a
// blank panel.
func TestGrafanaDashboardMetrics(t *testing.T) {
	known := map[string]bool{}
	for _, n := range exporter.MetricNames {
		known[n] = true
	}
	for _, n := range terndMetrics {
		known[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			known[n+suffix] = true
		}
	}
	used := map[string]bool{}
	for where, expr := range dashboardExprs(t) {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s: %q uses %s, which neither tern exporter nor ternd serves", where, expr, n)
			}
		}
	}
	// The check can fail: a misspelt name is caught.
	if n := metricNames(`sum by (kind) (rate(tern_event_total{kind="x"}[5m]))`); !slices.Equal(n, []string{"tern_event_total"}) {
		t.Errorf("metricNames found %v", n)
	}
	for _, want := range []string{"tern_device_online", "tern_device_converged", "tern_rollout_devices", "tern_job_devices", "tern_events_total", "tern_device_outbox_depth", "ternd_module_call_seconds_bucket", "ternd_plans_total"} {
		if !used[want] {
			t.Errorf("the dashboard has no panel on %s", want)
		}
	}
}

// grafanaToPromQL replaces the dashboard's Grafana variables with values
// Prometheus takes.
var grafanaToPromQL = strings.NewReplacer("$__rate_interval", "1m", "$rollout", ".*", "$job", ".*")
