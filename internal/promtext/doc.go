// Package promtext writes metrics in Prometheus's text exposition format
// (version 0.0.4): what ternd serves on /metrics and writes for
// node_exporter's textfile collector, and what tern exporter serves for
// the fleet. It is small on purpose: ternd runs on a Pi Zero and links
// no metrics library (RATIONALE, "Metrics without a client library").
//
// A Writer is filled family by family at scrape time from the caller's
// own counters; Histogram keeps a distribution; WriteFile writes a
// textfile atomically, as node_exporter asks.
package promtext
