// Package dashtest drives the dashboard in a real headless browser for
// tests: one chromium per test ([Browser]), a tab per subtest ([Tab]),
// waits on the page's DOM with a bound ([WaitText], [WaitJS]) and
// full-page screenshots kept as test artifacts ([Screenshot]). It also
// holds [Source], an in-memory dashboard.Source a test changes, and
// [Fleet], a simulated fleet to fill it with.
//
// The dashboard's own tests use it with the fake Source; an end-to-end
// test serves the dashboard from a real exporter and uses the same
// helpers. Chromium must be installed (apt-get install -y chromium): a
// test that needs it fails, it never skips.
package dashtest
