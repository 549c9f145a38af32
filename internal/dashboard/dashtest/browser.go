package dashtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tern-iot/tern/internal/testbound"
)

// Chromium is where the tests look for the browser first; then for
// chromium and chromium-browser on PATH.
const Chromium = "/usr/bin/chromium"

// Window is the size of the browser's window (a laptop screen); a test
// emulates a phone with chromedp.EmulateViewport.
const (
	WindowWidth  = 1280
	WindowHeight = 900
)

// Bound is how long the whole browser session of one test may take
// before it is called a hang; each wait has testbound.Hang.
var Bound = testbound.Scale(5 * time.Minute)

// chromiumPath finds chromium or fails t with the command that installs it.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(Chromium); err == nil {
		return Chromium
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("dashtest: no chromium at %s nor on PATH: the dashboard's browser tests need it; install chromium: apt-get install -y chromium", Chromium)
	return ""
}

// Browser starts one headless chromium for t, stopped when t ends, and
// returns a context whose actions run in its first tab. Open more tabs
// with [Tab]: they share the browser, which starts once.
func Browser(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(WindowWidth, WindowHeight),
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	ctx, cancelTime := context.WithTimeout(context.Background(), Bound)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	// chromedp reports protocol errors from its own goroutines, which may
	// outlive t: log them only while t runs.
	var mu sync.Mutex
	running := true
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if running {
			t.Logf("chromedp: "+format, args...)
		}
	}
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		mu.Lock()
		running = false
		mu.Unlock()
		chromedp.Cancel(ctx) // closes the browser gracefully
		cancelTab()
		cancelAlloc()
		cancelTime()
	})
	// Start the browser now, so that a missing library or a sandbox
	// problem is reported here, by name.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("dashtest: starting %s: %v", chromiumPath(t), err)
	}
	return ctx
}

// probe runs in every page a tab loads, before the page's own script: it
// records uncaught errors and Content-Security-Policy violations for
// PageErrors. DevTools' scripts are not subject to the page's CSP.
const probe = `window.__dashtest = { errors: [] };
window.addEventListener('error', (e) => window.__dashtest.errors.push('error: ' + (e.message || e.type)));
window.addEventListener('unhandledrejection', (e) => window.__dashtest.errors.push('unhandled rejection: ' + e.reason));
document.addEventListener('securitypolicyviolation', (e) => window.__dashtest.errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));`

// Tab opens a new tab in the browser of ctx (from [Browser]), closed
// when t ends. Every page it loads records its errors for PageErrors.
func Tab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(func() {
		chromedp.Cancel(ctx)
		cancel()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("dashtest: opening a tab: %v", err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: probe}); err != nil {
		t.Fatalf("dashtest: installing the error probe: %v", err)
	}
	return ctx
}

// PageErrors returns the uncaught errors and CSP violations of the page
// the tab shows (a tab from [Tab]).
func PageErrors(ctx context.Context) ([]string, error) {
	return Eval[[]string](ctx, `window.__dashtest ? window.__dashtest.errors : ['the dashtest probe is missing: open the tab with dashtest.Tab']`)
}

// ArtifactDir is where t's screenshots go: $TERN_ARTIFACTS/<test name>
// when TERN_ARTIFACTS is set, else t.ArtifactDir() (kept with go test
// -artifacts -outputdir DIR; a temporary directory otherwise).
func ArtifactDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("TERN_ARTIFACTS")
	if root == "" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("dashtest: TERN_ARTIFACTS: %v", err)
	}
	return dir
}

// Screenshot writes a full-page PNG of the tab to ArtifactDir(t) as
// name.png, logs its path and returns it.
func Screenshot(ctx context.Context, t testing.TB, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("dashtest: screenshot %s: %v", name, err)
	}
	path := filepath.Join(ArtifactDir(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("dashtest: screenshot %s: %v", name, err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// pollEvery is how often a wait looks at the page. The page may be in a
// background tab, where requestAnimationFrame does not run, so waits
// poll on a timer.
const pollEvery = 25 * time.Millisecond

// WaitJS waits until the JavaScript expression expr is truthy in the
// tab, for at most testbound.Hang; the error names expr.
func WaitJS(ctx context.Context, expr string) error {
	deadline := time.Now().Add(testbound.Hang)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(pollEvery), chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return nil
		}
		if !contextLost(err) || time.Now().After(deadline) {
			return fmt.Errorf("dashtest: waiting for %s: %w", expr, err)
		}
		// The page's document was replaced under the poll (a navigation
		// just finished): poll in the new one.
		time.Sleep(pollEvery)
	}
}

// contextLost reports whether err says the page's JavaScript context went
// away (the page navigated) while an evaluation ran.
func contextLost(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Cannot find context with specified id") ||
		strings.Contains(s, "Execution context was destroyed") ||
		strings.Contains(s, "Inspected target navigated or closed")
}

// WaitText waits until the first element that the CSS selector matches
// holds text in its text content, for at most testbound.Hang. Its error
// says what the element held last.
func WaitText(ctx context.Context, selector, text string) error {
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.textContent.includes(%s); })()`,
		strconv.Quote(selector), strconv.Quote(text))
	if err := WaitJS(ctx, expr); err != nil {
		got, _ := Eval[string](ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.textContent : "(no element)"; })()`, strconv.Quote(selector)))
		return fmt.Errorf("dashtest: %s never held %q (it holds %.300q): %w", selector, text, got, err)
	}
	return nil
}

// WaitCount waits until the CSS selector matches n elements, for at most
// testbound.Hang.
func WaitCount(ctx context.Context, selector string, n int) error {
	expr := fmt.Sprintf(`document.querySelectorAll(%s).length === %d`, strconv.Quote(selector), n)
	if err := WaitJS(ctx, expr); err != nil {
		got, _ := Eval[int](ctx, fmt.Sprintf(`document.querySelectorAll(%s).length`, strconv.Quote(selector)))
		return fmt.Errorf("dashtest: %s matched %d elements, not %d: %w", selector, got, n, err)
	}
	return nil
}

// Eval evaluates the JavaScript expression expr in the tab and decodes
// its value. An evaluation the page's navigation cut short is tried
// again, so expr should not mind running twice.
func Eval[T any](ctx context.Context, expr string) (T, error) {
	deadline := time.Now().Add(testbound.Hang)
	for {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
		if err == nil || !contextLost(err) || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(pollEvery)
	}
}
