// Package fleet connects devices and operators over MQTT 3.1.1.
//
// It is the code side of the fleet contract in docs/mqtt.md: topic names
// ([Topics]), the JSON payloads that travel on them ([TargetEnvelope],
// [ReleaseEnvelope], [StateReport], [EventReport]), the device end ([Device], used by ternd),
// the operator end ([Operator], used by the tern CLI). The broker for
// development and tests is package devbroker, apart so that the agent
// (ternd) does not link it.
//
// # Topics
//
// Every topic starts with a prefix (default "tern") and a fleet name, so
// several fleets can share one broker:
//
//	tern/<fleet>/devices/<id>/target   fleet → device, retained, QoS 1
//	tern/<fleet>/groups/<group>/target fleet → devices, retained, QoS 1
//	tern/<fleet>/modules/<name>        fleet → devices, retained, QoS 1
//	tern/<fleet>/devices/<id>/state    device → fleet, retained, QoS 1
//	tern/<fleet>/devices/<id>/events   device → fleet, QoS 1, not retained
//	tern/<fleet>/devices/<id>/online   device → fleet, retained: true, or false via last will
//
// # Delivery
//
// A target is published retained, so a device that connects for the first
// time, or after a broker restart, gets the latest one. The device keeps a
// persistent session (clean session off), so a QoS 1 message published to
// its target topic while it was away is delivered when it comes back.
// Delivery is at least once: the retained target is sent again after every
// reconnect, and QoS 1 may duplicate. A target's Version is what makes this
// safe: the consumer applies a version once and refuses older ones. Events
// carry an ID for the same reason.
//
// Payloads are checked where they enter ([ParseTargetEnvelope] and friends):
// size, format number, required fields. A device hands well-formed targets to
// its consumer ([Device.Targets]) and reports the rest ([Device.Refusals]),
// so that a bad push ends up as a target.refused event, never as a crash or
// a silent drop.
//
// Module releases ([ReleaseEnvelope]) travel the same way, retained on
// each module's topic: a manifest, whose code travels in retained chunks
// of [ChunkSize] that the device fetches, keeps and puts together
// (chunks.go, fetch.go), or, published by hand, one message of at most
// [MaxReleasePayload] bytes. A device receives those of the modules it
// runs ([Device.Releases]), whole, and checks their signature and version
// before it installs them through the runtime (ternd does, see
// internal/daemon).
//
// # Security
//
// Every envelope the fleet sends devices names the topic prefix and the
// fleet it was made for, and its signature covers them, with the scope
// (device, group, module or architecture) and the version, in one layout
// for every kind (see docs/mqtt.md, "What signatures cover"). A device
// refuses an envelope made for another fleet or prefix
// ([TargetEnvelope.CheckTopics], [ErrWrongFleet]), so what was signed for
// one fleet cannot be replayed into another. Versions are at most
// [MaxVersion] (2^53−1), so every JSON reader reads them exactly.
//
// Broker URLs ssl://, tls:// and mqtts:// speak TLS; [TLSFiles] names the
// CA that verifies the broker and the client certificate and key, for a
// device, an operator and the embedded broker (devbroker.NewTLS) alike. Who
// may read and write which topic is the broker's business: Mosquitto with
// firmware/mosquitto/acl.conf, or with [MosquittoACL]'s output for fleets
// with groups. See docs/mqtt.md.
//
// # Reports
//
// A device's event reports go through an outbox in its store: on the disk
// before [Device.PublishEvent] returns, numbered ([EventReport.Seq]) across
// restarts, and deleted only once the broker acknowledged them. A consumer
// that drops the numbers it has seen per device and [EventReport.Epoch]
// ([Dedup]) sees every event once, whatever the outages in between, and
// can put them in order by Seq (a NATS broker may redeliver one late). State
// reports are retained, so only the latest waits, in memory.
package fleet
