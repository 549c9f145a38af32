package dashboard_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/dashboard"
	"github.com/tern-iot/tern/internal/dashboard/dashtest"
	"github.com/tern-iot/tern/runtime/api"
)

// TestBrowser drives the dashboard in a real headless chromium, served
// under a prefix (/dash/) from the fake Source, which the test changes
// while the page is open. One browser serves every subtest, a tab each.
// Screenshots go to $TERN_ARTIFACTS or the test's artifact directory.
func TestBrowser(t *testing.T) {
	began := time.Now()
	now := time.Now()
	src := dashtest.NewSource(dashtest.Fleet(now)...)
	for _, d := range src.Devices() {
		src.AddEvents(dashtest.Events(d.ID, now)...)
	}
	srv := httptest.NewUnstartedServer(http.StripPrefix("/dash",
		dashboard.Handler(src, dashboard.Options{Title: "tern fleet", Fleet: "greenhouses", Interval: 100 * time.Millisecond})))
	// The live streams end with the server's base context, as a real
	// server's should at shutdown (Handler's doc).
	base, stop := context.WithCancel(context.Background())
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	t.Cleanup(func() { stop(); srv.Close() })
	url := srv.URL + "/dash/"

	browser := dashtest.Browser(t)
	t.Logf("chromium started in %v", time.Since(began).Round(time.Millisecond))
	defer func() { t.Logf("browser tests took %v in all", time.Since(began).Round(time.Millisecond)) }()

	// open loads the page (at hash) in a new tab and waits for the fleet.
	open := func(t *testing.T, hash string, actions ...chromedp.Action[chromedp.Void]) context.Context {
		t.Helper()
		tab := dashtest.Tab(t, browser)
		steps := append(actions, chromedp.Navigate(url+hash))
		if err := chromedp.Do(tab, steps...); err != nil {
			t.Fatalf("loading %s: %v", url+hash, err)
		}
		must(t, dashtest.WaitJS(tab, `window.ternDash && window.ternDash.loads > 0`))
		t.Cleanup(func() {
			errs, err := dashtest.PageErrors(tab)
			if err != nil {
				t.Errorf("reading the page's errors: %v", err)
			}
			for _, e := range errs {
				t.Errorf("page error: %s", e)
			}
		})
		return tab
	}
	fleetRows := `#fleet-body tr`
	visibleIDs := func(t *testing.T, tab context.Context) []string {
		t.Helper()
		ids, err := dashtest.Eval[[]string](tab, `[...document.querySelectorAll('#fleet-body tr')].map((tr) => tr.dataset.device)`)
		must(t, err)
		return ids
	}
	setFilter := func(t *testing.T, tab context.Context, id, value, event string) {
		t.Helper()
		_, err := dashtest.Eval[chromedp.Void](tab, fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event(%q)); })()`, id, value, event))
		must(t, err)
	}

	t.Run("fleet", func(t *testing.T) {
		tab := open(t, "")
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))
		c := dashtest.FleetCounts
		for name, want := range map[string]int{"devices": c.Devices, "online": c.Online, "converged": c.Converged, "pending": c.Pending, "failed": c.Failed} {
			must(t, waitExact(tab, "#count-"+name, strconv.Itoa(want)))
		}
		must(t, dashtest.WaitText(tab, `tr[data-device="pi-011"] td[data-col="error"]`, "no device acknowledged"))
		must(t, dashtest.WaitText(tab, `tr[data-device="pi-012"] td[data-col="online"]`, "offline"))
		must(t, dashtest.WaitText(tab, `#conn`, "live"))
		dashtest.Screenshot(tab, t, "01-fleet")

		// Typed into the filter: a group.
		must(t, chromedp.Do(tab, chromedp.SendKeys(chromedp.ID("filter"), "group=south")))
		must(t, dashtest.WaitCount(tab, fleetRows, 4))
		assertIDs(t, visibleIDs(t, tab), "pi-003", "pi-006", "pi-009", "pi-012")
		must(t, dashtest.WaitText(tab, "#shown", "4 of 12"))
		// A fact and a group together.
		setFilter(t, tab, "filter", "arch=armv7 group=north", "input")
		must(t, dashtest.WaitCount(tab, fleetRows, 2))
		assertIDs(t, visibleIDs(t, tab), "pi-010", "pi-011")
		dashtest.Screenshot(tab, t, "02-fleet-filtered")
		// The group menu, with a bare word.
		setFilter(t, tab, "filter", "00", "input")
		setFilter(t, tab, "group", "lab", "change")
		must(t, dashtest.WaitCount(tab, fleetRows, 4))
		assertIDs(t, visibleIDs(t, tab), "pi-001", "pi-002", "pi-003", "pi-004")
		setFilter(t, tab, "group", "", "change")
		setFilter(t, tab, "filter", "", "input")
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))

		// Sorted by status: the failed device first, then the pending.
		must(t, chromedp.Do(tab, chromedp.Click(chromedp.CSS(`button[data-sort="status"]`))))
		must(t, dashtest.WaitJS(tab, `document.querySelector('#fleet-body tr').dataset.device === 'pi-011'`))
		assertIDs(t, visibleIDs(t, tab)[:4], "pi-011", "pi-009", "pi-010", "pi-012")
		must(t, dashtest.WaitJS(tab, `document.querySelector('th[data-col="status"]').getAttribute('aria-sort') === 'ascending'`))
	})

	t.Run("device", func(t *testing.T) {
		tab := open(t, "#/device/pi-009")
		must(t, dashtest.WaitCount(tab, `[data-testid="plan-node"]`, 5))
		must(t, dashtest.WaitCount(tab, `[data-testid="plan-edge"]`, dashtest.PlanEdges))
		must(t, waitExact(tab, "#device-heading", "pi-009"))
		// Each node is a task: its label, its state; each edge a dep.
		nodes, err := dashtest.Eval[[]struct {
			Task  string  `json:"task"`
			State string  `json:"state"`
			Text  string  `json:"text"`
			X     float64 `json:"x"`
		}](tab, `[...document.querySelectorAll('[data-testid="plan-node"]')].map((g) => ({task: g.dataset.task, state: g.dataset.state, text: g.textContent, x: +g.querySelector('rect').getAttribute('x')}))`)
		must(t, err)
		want := dashtest.Plan(8, "done", "done", "running", "pending", "pending").Tasks
		x := map[string]float64{}
		for i, n := range nodes {
			w := want[i]
			x[n.Task] = n.X
			label := w.Module + "." + w.Job
			if n.Task != strconv.Itoa(w.ID) || n.State != w.State || !strings.Contains(n.Text, label) || !strings.Contains(n.Text, w.Path) {
				t.Errorf("node %d = %+v, want task %d %s %s %s", i, n, w.ID, label, w.Path, w.State)
			}
		}
		// Columns by depth: 1 and 2, then 3 and 4, then 5.
		if !(x["1"] == x["2"] && x["2"] < x["3"] && x["3"] == x["4"] && x["4"] < x["5"]) {
			t.Errorf("columns: task x positions %v; want 1=2 < 3=4 < 5", x)
		}
		edges, err := dashtest.Eval[[]string](tab, `[...document.querySelectorAll('[data-testid="plan-edge"]')].map((p) => p.dataset.from + '>' + p.dataset.to).sort()`)
		must(t, err)
		assertIDs(t, edges, "1>3", "1>4", "2>4", "3>5", "4>5")
		must(t, dashtest.WaitText(tab, "#plan-caption", "Target version 8: 5 tasks"))
		must(t, dashtest.WaitCount(tab, `#events tbody tr[data-kind]`, 5))
		must(t, dashtest.WaitText(tab, `#device-summary [data-field="facts"]`, "arch=armv7"))
		dashtest.Screenshot(tab, t, "03-device")

		// The progress view: the rollout's bar and the job's.
		must(t, chromedp.Do(tab, chromedp.Click(chromedp.ID("nav-progress"))))
		must(t, dashtest.WaitCount(tab, `[data-testid="rollout"]`, 1))
		must(t, dashtest.WaitText(tab, `[data-rollout="relay-5"] .phases`, "succeeded 8"))
		must(t, dashtest.WaitText(tab, `[data-job="rotate-logs"] .phases`, "succeeded 4"))
		dashtest.Screenshot(tab, t, "04-progress")
	})

	t.Run("live", func(t *testing.T) {
		tab := open(t, "")
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))
		must(t, dashtest.WaitJS(tab, `window.ternDash.ready`))
		if _, err := dashtest.Eval[chromedp.Void](tab, `window.__loadedOnce = 'yes'`); err != nil {
			t.Fatal(err)
		}
		row := `tr[data-device="pi-010"] [data-testid="status"]`
		must(t, waitExact(tab, row, "pending"))
		dashtest.Screenshot(tab, t, "05-live-before")

		// The target is reached: the device reports converged.
		src.Update("pi-010", func(d *dashboard.Device) {
			d.State.Converged, d.State.Phase = true, api.PhaseIdle
			d.State.Plan = dashtest.Plan(8, "done", "done", "done", "done", "done")
			d.Seen = time.Now()
		})
		must(t, waitExact(tab, row, "converged"))
		must(t, waitExact(tab, "#count-converged", strconv.Itoa(dashtest.FleetCounts.Converged+1)))
		must(t, waitExact(tab, "#count-pending", strconv.Itoa(dashtest.FleetCounts.Pending-1)))
		if got, err := dashtest.Eval[string](tab, `window.__loadedOnce || 'gone: the page reloaded'`); err != nil || got != "yes" {
			t.Errorf("the page's marker: %q, %v; want it kept (no reload)", got, err)
		}
		dashtest.Screenshot(tab, t, "06-live-after")

		// A device page updates in place too.
		dev := open(t, "#/device/pi-009")
		must(t, dashtest.WaitJS(dev, `window.ternDash.ready`))
		must(t, dashtest.WaitCount(dev, `[data-testid="plan-node"][data-state="done"]`, 2))
		if _, err := dashtest.Eval[chromedp.Void](dev, `window.__loadedOnce = 'yes'`); err != nil {
			t.Fatal(err)
		}
		src.Update("pi-009", func(d *dashboard.Device) {
			d.State.Converged, d.State.Phase = true, api.PhaseIdle
			d.State.Plan = dashtest.Plan(8, "done", "done", "done", "done", "done")
		})
		src.AddEvents(fleet.EventReport{Format: fleet.ReportFormat, Device: "pi-009", Seq: 99,
			Event: api.Event{ID: "pi-009-99", Time: time.Now(), Kind: api.EventConverged, TargetVersion: 8}})
		must(t, dashtest.WaitCount(dev, `[data-testid="plan-node"][data-state="done"]`, 5))
		must(t, waitExact(dev, `[data-testid="device-status"]`, "converged"))
		must(t, dashtest.WaitCount(dev, `#events tbody tr[data-kind]`, 6))
		must(t, dashtest.WaitText(dev, `#events tbody tr`, "converged")) // newest first
		if got, _ := dashtest.Eval[string](dev, `window.__loadedOnce || 'gone'`); got != "yes" {
			t.Errorf("the device page reloaded (marker %q)", got)
		}
		// A device the Source forgets leaves the table.
		src.Set(dashboard.Device{ID: "pi-999", Online: true, Seen: time.Now()})
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize+1))
		src.Remove("pi-999")
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))
	})

	t.Run("phone", func(t *testing.T) {
		tab := open(t, "", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))
		layout, err := dashtest.Eval[struct {
			Row     string  `json:"row"`
			Head    string  `json:"head"`
			Label   string  `json:"label"`
			Width   float64 `json:"width"`
			Scroll  float64 `json:"scroll"`
			CardW   float64 `json:"cardW"`
			CardTop float64 `json:"cardTop"`
			NextTop float64 `json:"nextTop"`
		}](tab, `(() => {
			const rows = document.querySelectorAll('#fleet-body tr');
			const cell = rows[0].querySelector('td[data-col="status"]');
			return {
				row: getComputedStyle(rows[0]).display,
				head: getComputedStyle(document.querySelector('#fleet thead')).position,
				label: getComputedStyle(cell, '::before').content,
				width: window.innerWidth,
				scroll: document.documentElement.scrollWidth,
				cardW: rows[0].getBoundingClientRect().width,
				cardTop: rows[0].getBoundingClientRect().top,
				nextTop: rows[1].getBoundingClientRect().top,
			};
		})()`)
		must(t, err)
		t.Logf("phone layout: %+v", layout)
		if layout.Row == "table-row" || layout.Head != "absolute" || layout.Label != `"Status"` {
			t.Errorf("phone: rows display %q, header position %q, cell label %s; want cards: not table-row, absolute (hidden), \"Status\"", layout.Row, layout.Head, layout.Label)
		}
		if layout.Width != 390 || layout.Scroll > layout.Width || layout.CardW > layout.Width {
			t.Errorf("phone: viewport %v wide, page %v, card %v: nothing may be wider than the screen", layout.Width, layout.Scroll, layout.CardW)
		}
		if layout.NextTop-layout.CardTop < 100 {
			t.Errorf("phone: cards %v px apart; a card stacks its fields, so it is taller than a table row", layout.NextTop-layout.CardTop)
		}
		dashtest.Screenshot(tab, t, "07-phone")
		must(t, chromedp.Do(tab, chromedp.Navigate(url+"#/device/pi-011")))
		must(t, dashtest.WaitCount(tab, `[data-testid="plan-node"]`, 5))
		scroll, err := dashtest.Eval[float64](tab, `document.documentElement.scrollWidth`)
		must(t, err)
		if scroll > 390 {
			t.Errorf("phone: the device page is %v px wide; the plan scrolls in its own box", scroll)
		}
		dashtest.Screenshot(tab, t, "08-phone-device")
	})

	t.Run("keyboard", func(t *testing.T) {
		tab := open(t, "")
		must(t, dashtest.WaitCount(tab, fleetRows, dashtest.FleetSize))
		// Tab from the top until a device link has the focus.
		var focused string
		for range 40 {
			must(t, chromedp.Do(tab, chromedp.KeyEvent(kb.Tab)))
			f, err := dashtest.Eval[string](tab, `(() => { const a = document.activeElement; return a && a.matches('#fleet-body a') ? a.textContent : ''; })()`)
			must(t, err)
			if focused = f; f != "" {
				break
			}
		}
		if focused != "pi-001" {
			t.Fatalf("Tab never reached the first device's link (focused %q)", focused)
		}
		// The focus is drawn: an outline on the focused link.
		outline, err := dashtest.Eval[string](tab, `getComputedStyle(document.activeElement).outlineStyle`)
		must(t, err)
		if outline == "none" {
			t.Errorf("the focused link has no outline")
		}
		dashtest.Screenshot(tab, t, "09-keyboard-focus")
		must(t, chromedp.Do(tab, chromedp.KeyEvent(kb.Enter)))
		must(t, dashtest.WaitJS(tab, `location.hash === '#/device/pi-001'`))
		must(t, dashtest.WaitCount(tab, `[data-testid="plan-node"]`, 5))
		must(t, dashtest.WaitJS(tab, `document.activeElement && document.activeElement.id === 'device-heading'`))
	})

	t.Run("hostile", func(t *testing.T) {
		// What a device sends is text: markup in it is shown, never run.
		const evil = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
		st := api.Status{Time: time.Now(), TargetVersion: 1, Phase: api.PhaseFailed, Error: evil,
			Facts:   map[string]string{"site": evil},
			Modules: map[string]string{`<b>m</b>`: `"><svg onload=window.__pwned=3>`},
			Plan: &api.PlanGraph{TargetVersion: 1, Tasks: []api.PlanTask{
				{ID: 1, Module: evil, Job: "j", Path: `</text><script>window.__pwned=4</script>`, State: `"><img src=x onerror=window.__pwned=5>`},
				{ID: 2, Module: "m", Job: "j", Deps: []int{1, 2, 77}, State: "done"}, // a dep on itself and on a task not reported
			}},
		}
		src.Set(dashboard.Device{ID: "evil-1", Online: true, Seen: time.Now(),
			State: &fleet.StateReport{Format: fleet.ReportFormat, Device: "evil-1", Groups: []string{evil}, Status: st}})
		src.AddEvents(fleet.EventReport{Format: fleet.ReportFormat, Device: "evil-1", Seq: 1,
			Event: api.Event{ID: "e1", Time: time.Now(), Kind: "task.failed", Message: evil, Path: evil}})
		defer src.Remove("evil-1")

		tab := open(t, "")
		must(t, dashtest.WaitText(tab, `tr[data-device="evil-1"] td[data-col="error"]`, evil))
		must(t, dashtest.WaitText(tab, `tr[data-device="evil-1"] td[data-col="groups"]`, evil))
		must(t, chromedp.Do(tab, chromedp.Navigate(url+"#/device/evil-1")))
		must(t, dashtest.WaitCount(tab, `[data-testid="plan-node"]`, 2))
		must(t, dashtest.WaitText(tab, `#events tbody`, evil))
		must(t, dashtest.WaitText(tab, `#device-summary`, evil))
		got, err := dashtest.Eval[string](tab, `JSON.stringify({pwned: window.__pwned ?? null, img: document.querySelectorAll('main img, main script, main b, svg svg').length, states: [...document.querySelectorAll('[data-testid="plan-node"]')].map((g) => g.getAttribute('class'))})`)
		must(t, err)
		if want := `{"pwned":null,"img":0,"states":["node st-pending","node st-done"]}`; got != want {
			t.Errorf("hostile device: page state %s; want %s", got, want)
		}
		dashtest.Screenshot(tab, t, "10-hostile")
	})
}

// waitExact waits until the element's text is exactly want.
func waitExact(ctx context.Context, selector, want string) error {
	err := dashtest.WaitJS(ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent === %q; })()`, selector, want))
	if err != nil {
		got, _ := dashtest.Eval[string](ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.textContent : '(no element)'; })()`, selector))
		return fmt.Errorf("%s: %q, want %q: %w", selector, got, want, err)
	}
	return nil
}

func assertIDs(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
