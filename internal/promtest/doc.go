// Package promtest runs a real Prometheus server for tests: Start writes a
// configuration that scrapes the given /metrics URLs every second, starts
// /usr/bin/prometheus on a free loopback port with a temporary storage
// directory, and answers queries through Prometheus's own HTTP API
// (/api/v1/query), so a test checks what Prometheus made of a scrape, not
// what the exporter wrote.
//
// A test that needs it fails, never skips, when prometheus is missing.
package promtest
