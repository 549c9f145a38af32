// Package hostile is the acceptance harness of "the sandbox holds against
// any module": a test suite, and nothing else (this file is its only
// non-test file).
//
// # What it runs
//
// Each class of hostile job module runs against a real ternd process
// (cmd/ternd, built once per test binary) on the simulated board, in a
// fleet of its own on one shared Mosquitto. The device runs two modules:
// the real relay plugin, granted GPIO17 and switching the heater, and
// "evil", granted GPIO27, the I2C device i2c1:0x48 and the serial port
// ttyS0@9600. evil starts as a harmless module (testdata/evil-1.0.0.wat);
// the hostile code arrives the way an operator ships a fix: a signed
// release published by `tern release` (the internal/cli code path, with a
// key from `tern keys generate`), over the broker, to a device that trusts
// only that key. Targets go out with `tern push`, signed too. The test
// watches the device's state and events topics with its own MQTT client,
// subscribed before anything starts.
//
// For every class the suite asserts:
//
//  1. ternd stays up: the process is running, and it keeps answering (its
//     retained state report follows every new target);
//  2. the relay module beside the hostile one keeps converging: relay
//     targets (heater on, then off, with growing versions) reach a
//     converged state report within 20 s (an idle machine needs a second
//     or two; the latencies are logged);
//  3. ternd's memory stays under 300 MiB: VmRSS sampled every 100 ms from
//     /proc/<pid>/status, and VmHWM, the kernel's peak; a table of both
//     per class is logged at the end (go test -v). Past 1.5 GiB the
//     sampler kills ternd, to protect the machine, and the class fails;
//  4. an event on tern/<fleet>/devices/<id>/events names the problem.
//
// # Threat model covered
//
// The attacker is a job module: code signed by a trusted operator key (a
// careless operator, a stolen key, a compromised build) that must not be
// able to take the device, the other modules or the fleet with it. The
// classes, one module each (WebAssembly text in testdata/, or made by a
// generator in modules_test.go where text cannot express it):
//
//   - Decode bombs (binary, 200 bytes or so): counts nested inside honest
//     sections declared as 2^32-1 with a few bytes behind them: an element
//     segment's init vector, a function type's parameters and results, the
//     name section's function-name map and a function's local-name map, a
//     data segment's size, a br_table's targets. A decoder that allocates
//     what is declared asks for up to 128 GiB. Refused with the count named.
//   - Table hog: table.grow by 2^27 funcref entries (1 GiB of host memory
//     outside the linear-memory cap) and table.fill. Growth must fail.
//   - Stack overflow: unbounded recursion in a run and a sensor.
//   - Compile bomb (binary): one function of 100,000 nested blocks; the
//     agent must not block on compiling it (a relay target pushed
//     meanwhile converges), and it is refused.
//   - A start function (_initialize) that never returns.
//   - An import no host provides ("env"."foo").
//   - Cross-module actuation: a method of a module with no grant on
//     GPIO17 expanding into relay.switch on /relays/heater.
//   - A sensor writing another module's path (/relays): refused or
//     confined; the relay module must not fight it.
//   - Refusal flood: 200 new ungranted line names per sensor call; the
//     events about it must stay few.
//   - Manifest bomb: a 600 KB version field, which a device would repeat
//     in every state report and event.
//   - Slow sensor: every call sleeps to its deadline; the relay converges
//     in less than that deadline.
//   - GPIO write flood on a granted line: writes fail past a rate, with
//     one event.
//   - Randomness: two instances must read different bytes from WASI
//     random_get (a fixed seed makes every device's "random" the same).
//   - Releases: version 2^64-1 (above the 2^53-1 a JSON number carries
//     exactly, and a version no later release can pass), the same version
//     with other code, and a release signed for another fleet.
//
// Out of scope here: attacks on the broker or the operator, hardware
// faults (the testbench's scenarios), and what the host functions refuse
// one call at a time (runtime's hostile tests, in process).
//
// # Running
//
//	go test ./testbench/hostile/ -v
//
// It needs mosquitto (apt-get install mosquitto) and wat2wasm (apt-get
// install wabt), and fails at once without them. Classes run in parallel
// (go test's -parallel, GOMAXPROCS by default), one ternd each: about 40 s
// on 2 cores when the device holds. A class that fails waits out its
// bounds (45 s for an event, 20 s for a relay target), so a run against a
// device that holds nothing takes about 5 minutes; run one class with
// -run 'TestSandboxHolds/class/table-hog'.
package hostile
