// Package exporter is tern exporter: the operator-side process that
// follows a whole fleet through the broker and keeps what it reports.
//
// It connects with a persistent session (fleet.OperatorOptions.Session),
// so the broker queues the devices' events while it is stopped, and
// stores each event, before the broker's acknowledgement, in an event
// history on disk (bbolt, events.db in its data directory): kept for a
// retention time and up to a count, deduplicated by (device, epoch, seq)
// in the store itself, so a restart that brings copies again stores each
// event once. The history's order is the order events arrived, except
// that each device's events are in seq order: one redelivered late sorts
// just before the next of its device.
//
// The latest state report, presence and job statuses of each device are
// kept in memory, rebuilt from the retained messages at every start.
//
// An Exporter is a dashboard.Source, and its Handler serves Prometheus
// metrics computed at scrape time (the tern_ families, promtext), the
// history as JSON (/api/events, which tern events reads), a health check,
// and the dashboard at /. See docs/observability.md.
package exporter
