// Package dashboard is the fleet's web dashboard: the fleet at a glance,
// a device's page with its plan drawn as a graph and its recent events,
// rollout and job progress, updated live without a reload. Its assets are
// embedded in the tern binary; nothing is built by the user.
//
// It shows what a [Source] holds; tern exporter is the Source it is
// served with (docs/observability.md).
package dashboard
