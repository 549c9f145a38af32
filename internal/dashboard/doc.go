// Package dashboard is the fleet's web dashboard: the fleet at a glance,
// a device's page with its plan drawn as a graph and its recent events,
// rollout and job progress, updated live without a reload. Its assets are
// embedded in the tern binary; nothing is built by the user.
//
// It shows what a [Source] holds; tern exporter is the Source it is
// served with (docs/observability.md).
//
// [Handler] serves, at paths relative to where it is mounted, the page
// (index.html, app.js, app.css from assets/), a read-only JSON API the
// page reads (api.go: api/devices, api/devices/{id}, api/rollouts,
// api/jobs) and a Server-Sent Events stream of changed devices
// (stream.go: api/stream). Everything a device sent is data the page
// puts into the DOM as text, under a Content-Security-Policy that allows
// no inline script. It has no login: bind it to loopback or put it behind
// an authenticating proxy.
//
// Package dashtest drives it in a real headless browser for tests.
package dashboard
