package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tern-iot/tern/internal/version"
)

// command is one thing tern does. The table commands is the one list of
// them: Main dispatches from it, `tern --help` lists it, each command's
// --help prints its entry, and a test checks that docs/cli.md names every
// entry. A command missing here does not run; one without help or docs
// fails that test.
type command struct {
	name     string   // as typed: "push", "module build" (a subcommand after its group)
	args     string   // its flags and arguments, after "tern NAME"
	short    string   // what it does, one line, for tern --help
	summary  string   // what it does, a short paragraph, for its --help
	examples []string // command lines its --help shows
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled in init: its entries' run functions reach newFlags,
// which reads the table, and Go forbids such a cycle in a variable's
// initializer.
var commands []command

func init() {
	commands = []command{
		{
			name:  "broker",
			args:  "[--listen ADDR] [--data DIR] [--cert F --cert-key F [--ca F]] [-v]",
			short: "run a development MQTT broker (TLS with --cert)",
			summary: "Run the embedded MQTT broker (nats-server with MQTT and JetStream), for\n" +
				"development and demos: no authentication (with --ca: client certificates from\n" +
				"that CA), no ACL. With --data, sessions and retained messages survive a\n" +
				"restart. Fleets run Mosquitto or a clustered broker instead;\n" +
				"tern broker acl --help says how to make its ACL.",
			examples: []string{
				"tern broker",
				"tern broker --listen 0.0.0.0:1883 --data /var/lib/tern-broker -v",
				"tern broker --listen 127.0.0.1:8883 --cert broker.pem --cert-key broker.key --ca ca.pem",
			},
			run: broker,
		},
		{
			name:  "broker acl",
			args:  "--inventory FILE [--fleet NAME] [--prefix P]",
			short: "print a Mosquitto acl_file for the fleet's devices",
			summary: "Print a Mosquitto acl_file that lets each device read its own target, its\n" +
				"groups' targets and the module releases, and write only its own reports.\n" +
				"The inventory (YAML or JSON) lists each device's groups, and optionally the\noperators (default tern-operator). See docs/mqtt.md, Access control.",
			examples: []string{
				"tern broker acl --fleet demo --inventory inventory.yaml > /etc/mosquitto/tern.acl",
			},
			run: brokerACL,
		},
		{
			name:  "push",
			args:  "[fleet flags] --device ID | --group NAME [--key K.key] [--version N] [--dry-run [--timeout D] [--json]] FILE|-|JSON",
			short: "push a (signed) target to a device or a group, or dry-run it",
			summary: "Push a target (the desired state, a JSON object) to one device or to a group,\n" +
				"retained, so devices that are offline now get it when they come back. Sign it\n" +
				"with --key when devices have trusted_keys. --version defaults to the time in\n" +
				"milliseconds; a given one is 1 to 2^53-1 and must grow with every push.\n" +
				"With --dry-run nothing is pushed: every connected device in scope plans the\n" +
				"target on its live state without acting and answers with its plan or why it\n" +
				"has none; tern prints how many would run which plan, how many already\n" +
				"converge, how many cannot (grouped by reason) and who did not answer within\n" +
				"--timeout. Exit status: 0 when every device can, 5 when some cannot or\n" +
				"refused, 4 when none cannot but some did not answer.",
			examples: []string{
				`tern push --fleet demo --device pi-001 '{"relays":{"heater":true}}'`,
				"tern push --fleet demo --group heaters --key ops.key --dry-run target.json && tern push --fleet demo --group heaters --key ops.key target.json",
				"tern push --fleet demo --group heaters --key ops.key target.json",
				"jq .target rollout.json | tern push --fleet demo --group floor-2 -",
			},
			run: push,
		},
		{
			name:  "sign",
			args:  "[--fleet NAME] [--prefix P] --device ID | --group NAME --key K.key [--version N] FILE|-|JSON",
			short: "print a signed target envelope, to publish elsewhere",
			summary: "Sign a target without connecting to a broker: print the signed envelope (JSON)\n" +
				"and, on stderr, the topic to publish it on, retained with QoS 1. For an\noperator key that stays on an offline machine.",
			examples: []string{
				`tern sign --fleet demo --device pi-001 --key ops.key '{"relays":{"heater":true}}' > target.json`,
				"mosquitto_pub -t tern/demo/devices/pi-001/target -r -q 1 -f target.json",
				"tern sign --fleet demo --group heaters --key ops.key --version 8 target.json",
			},
			run: sign,
		},
		{
			name:  "release",
			args:  "[fleet flags] --module NAME --key K.key [--version N [--force]] [--config ternd.yaml] [--dry-run] M.wasm",
			short: "release M.wasm to the fleet as module NAME",
			summary: "Release a job module to the fleet as module NAME (--module, required): signed\n" +
				"(the module too, if it is not yet, with its manifest embedded first) for the\n" +
				"fleet and topic prefix, retained on NAME's topic, so every device that runs NAME\n" +
				"installs it, now or when it comes back, and runs it with the grants its\n" +
				"ternd.yaml gives NAME. The file's manifest must name NAME too. Before publishing\n" +
				"it prints those grants (--config: one device's). --version defaults to the\n" +
				"larger of one more than the retained release's and the time in milliseconds; a\n" +
				"--version not above the retained release's is refused (--force publishes it\n" +
				"anyway). At most 2^53-1; at most 8 MiB of code.",
			examples: []string{
				"tern release --fleet demo --module thermostat --key ops.key thermostat.wasm",
				"tern release --fleet demo --module relay --key ops.key --version 12 --config ternd.yaml relay.wasm",
				"tern release --fleet demo --module relay --key ops.key --dry-run relay.wasm > release.json && mosquitto_pub -t tern/demo/modules/relay -r -q 1 -f release.json",
			},
			run: release,
		},
		{
			name:  "agent release",
			args:  "[fleet flags] --key K.key [--version N] [--arch ARCH] [--agent-version V] [--dry-run] TERND",
			short: "release a ternd binary to the devices of its architecture",
			summary: "Release a ternd binary (from make dist) to the devices of its architecture:\n" +
				"signed, compressed, retained on <prefix>/<fleet>/agent/<arch>. Each device\n" +
				"stages it, restarts into it, and keeps it if it is connected and converged\n" +
				"within update_health_timeout; otherwise it rolls back. --version defaults to\n" +
				"the time in milliseconds. See docs/install.md.",
			examples: []string{
				"tern agent release --fleet demo --key ops.key dist/ternd-linux-arm64",
				"tern agent release --fleet demo --key ops.key --dry-run dist/ternd-linux-armv7 > agent.json",
			},
			run: agentRelease,
		},
		{
			name:  "inventory",
			args:  "[fleet flags] [--group G | --device ID] [--where KEY=VALUE]... [--json] [--wait D]",
			short: "what each device is: ternd version, arch, board, kernel, disk, memory, facts",
			summary: "Print a table of devices from the agent block and facts of their retained\n" +
				"state reports: ternd version, architecture, board, kernel, ternd's uptime,\n" +
				"store, free disk in its data directory, event reports waiting in its outbox,\n" +
				"resident memory, online, facts. --where KEY=VALUE (or KEY!=VALUE; repeatable,\n" +
				"all must hold) selects by device, group, version (ternd's), arch, board,\n" +
				"kernel, store or any fact; tern status, watch and job who take it too.\n" +
				"Exit status: 0, or 1 when no device reported (or none matched).",
			examples: []string{
				"tern inventory --fleet demo",
				"tern inventory --fleet demo --where arch=armv6 --where site!=mill",
				"tern inventory --fleet demo --json | jq -r '.[] | select(.agent.disk_free < 1e9) | .device'",
			},
			run: inventoryCmd,
		},
		{
			name:  "status",
			args:  "[fleet flags] [--group G | --device ID] [--where KEY=VALUE]... [--json] [--wait D]",
			short: "a table of devices: online, version, converged, errors",
			summary: "Print a table of devices from their retained reports: online, target version,\n" +
				"converged or not, phase, last error (its first line; --json has it whole), age\n" +
				"of the report, module versions. It collects until no new report came for\n" +
				"300ms, or for at most --wait.\n" +
				"Exit status: 0 when every listed device is converged and online, 4 when some\nis not (so a script can gate a rollout), 1 when no device reported at all.",
			examples: []string{
				"tern status --fleet demo",
				"tern status --fleet demo --group heaters --json | jq '.[] | select(.converged | not)'",
				"tern status --fleet demo --device pi-001 && echo pi-001 is done",
			},
			run: status,
		},
		{
			name:  "watch",
			args:  "[fleet flags] [--group G | --device ID] [--where KEY=VALUE]... [--pushed V | --version N] [--until-converged] [--expect N] [--timeout D] [--json]",
			short: "live state changes and events; rollout progress",
			summary: "Print devices' state changes and events as they happen: one device (--device),\n" +
				"one group (--group), or every device of the fleet. Events delivered twice are\n" +
				"shown once (by their seq). With --pushed V, show the rollout of the push of\n" +
				"version V to the group or device watched as one line, redrawn on a terminal:\n" +
				"  rollout group/heaters v7: 98/100 converged, 1 failed, 1 pending, 2 offline\n" +
				"(offline overlaps the other counts). A device reports the sum of its targets'\n" +
				"versions (its groups' and its own); tern reads the others' and adds them up\n" +
				"for each device. --version N counts that sum, the same for every device.\n" +
				"With --until-converged, exit 0 once every watched device converged, or 3 at\n" +
				"--timeout.",
			examples: []string{
				"tern watch --fleet demo --device pi-001",
				"tern watch --fleet demo --group heaters --pushed 7 --until-converged --timeout 10m",
				"tern watch --fleet demo --json | jq -c 'select(.type == \"event\")'",
			},
			run: watch,
		},
		{
			name:  "exporter",
			args:  "[fleet flags] --data DIR [--listen ADDR] [--retain D] [--max-events N] [--session ID] [-v]",
			short: "follow the fleet: event history, Prometheus metrics, dashboard",
			summary: "Run until interrupted: follow every device's state, presence, job statuses and\n" +
				"events through the broker with a persistent session (the broker queues events\n" +
				"while the exporter is stopped, so none is missed), keep the events in a history\n" +
				"in --data (each once, by device and seq; --retain, --max-events), and serve on\n" +
				"--listen: /metrics for Prometheus (tern_ metrics), /api/events for tern events,\n" +
				"/healthz, and the web dashboard at /. See docs/observability.md.",
			examples: []string{
				"tern exporter --fleet demo --data /var/lib/tern-exporter",
				"tern exporter --broker ssl://broker.example:8883 --ca ca.pem --cert exporter.pem --cert-key exporter.key --fleet demo --data /var/lib/tern-exporter --listen 0.0.0.0:9700 --retain 2160h",
			},
			run: exporterCmd,
		},
		{
			name:  "events",
			args:  "[--exporter URL] [--since 24h|TIME] [--until TIME] [--device ID] [--kind K]... [--limit N] [--json]",
			short: "the fleet's event history, from tern exporter",
			summary: "Print the events tern exporter stored, in order (each device's in its seq\n" +
				"order), also those that happened while the exporter was stopped: the newest\n" +
				"--limit of those since --since (a duration back from now, or an RFC 3339 time).\n" +
				"One line each: time, device, #seq, kind, version, module.job, path, message.",
			examples: []string{
				"tern events --since 24h --device pi-001",
				"tern events --since 2026-12-06T00:00:00Z --kind task.failed,plan.failed",
				"tern events --exporter http://exporter.example:9700 --since 1h --json | jq -r .kind | sort | uniq -c",
			},
			run: eventsCmd,
		},
		{
			name:  "plan",
			args:  "--target FILE|-|JSON [--state FILE|-|JSON] --module M.wasm... [--config NAME=JSON...] [--strict] [--all-or-nothing] [--format text|mermaid|dot|json]",
			short: "preview offline what a device would do",
			summary: "Preview offline what a device would do: plan from a state to a target with\n" +
				"the given job modules, and print the plan as text, Mermaid, DOT or JSON.\n" +
				"When part of the target cannot be reached, the plan reaches the rest, as a\n" +
				"device's does, and stderr says what it leaves out and why (--all-or-nothing:\n" +
				"no plan at all). Exit status: 0 with a plan for the whole target, 1 with a\n" +
				"partial plan or none (the reason on stderr).",
			examples: []string{
				`tern plan --module relay.wasm --config 'relay={"lines":{"heater":"GPIO17"}}' --state '{"relays":{"heater":false}}' --target '{"relays":{"heater":true}}'`,
				"tern plan --module relay.wasm --target target.json --format mermaid",
			},
			run: planCmd,
		},
		{
			name:    "module build",
			args:    "DIR [-o OUT.wasm]",
			short:   "build a job module from Go (manifest embedded)",
			summary: "Build a job module from a Go package (GOOS=wasip1 GOARCH=wasm), with its\nmanifest embedded as a custom section.",
			examples: []string{
				"tern module build ./plugins/relay",
				"tern module build ./plugins/relay -o relay.wasm",
			},
			run: moduleBuild,
		},
		{
			name:  "module sign",
			args:  "--key K.key M.wasm [-o OUT.wasm]",
			short: "sign a module for devices that trust K",
			summary: "Sign a module so that devices trusting the key accept it (in place unless -o).\n" +
				"A module without a manifest section (a plain go build, or make plugins) gets\n" +
				"one first, read from the module itself in the sandbox, as tern module build\ndoes.",
			examples: []string{
				"tern module sign --key ops.key relay.wasm",
				"tern module sign --key ops.key relay.wasm -o relay-signed.wasm",
			},
			run: moduleSign,
		},
		{
			name:  "module inspect",
			args:  "M.wasm [--trust K.pub]... [--json]",
			short: "print a module's manifest, hash and signer",
			summary: "Print a module's manifest (from its manifest section, or, for a module without\n" +
				"one, from the module itself, loaded in the sandbox), hash and signer; with\n--trust, check the signature.",
			examples: []string{
				"tern module inspect relay.wasm",
				"tern module inspect relay.wasm --trust ops.pub --json",
			},
			run: moduleInspect,
		},
		{
			name:  "job submit",
			args:  "[fleet flags] --device ID | --group NAME --module M --command C [--args JSON|FILE|-] [--arg K=V]... [--at TIME] [--cron EXPR [--tz ZONE]] [--deadline TIME] [--after ID[:ended]]... [--attempts N] [--key K.key]",
			short: "submit a job: a module's command, once or on a schedule",
			summary: "Submit a job to a device or a group: one module command with arguments, now,\n" +
				"at a time (--at) or on a cron schedule (--cron, --tz), retained, so devices that\n" +
				"are off now run it when they come back, by their own clock (a job with a time\n" +
				"waits for the device's clock to be synchronised). Prints the job's id. See\ndocs/jobs.md.",
			examples: []string{
				`tern job submit --fleet demo --device pi-001 --module relay --command pulse --arg relay=door --arg ms=500`,
				`tern job submit --fleet demo --group gateways --module updater --command upgrade --at 2026-12-07T04:00:00+01:00 --deadline 2026-12-07T06:00:00+01:00 --attempts 3 --key ops.key`,
				`tern job submit --fleet demo --group heaters --module relay --command pulse --args '{"relay":"purge","ms":2000}' --cron "0 3 * * 0" --tz Europe/Berlin`,
				`tern job submit --fleet demo --device pi-001 --module updater --command reboot --after 20261206-030000-k3v9qa`,
			},
			run: jobSubmit,
		},
		{
			name:  "job status",
			args:  "[fleet flags] ID [--json] [--wait D]",
			short: "how a job went on each device, from retained reports",
			summary: "Print each device's status of job ID (phase, attempts, times, result or\n" +
				"error) and the totals, from what devices retained on the broker: it works the\n" +
				"next day, for devices that are offline now. A group's devices that never\n" +
				"reported the job show as unreported. Exit 0: every device succeeded (or a\n" +
				"recurring job); 4: some have not ended it; 5: some ended it otherwise.",
			examples: []string{
				"tern job status --fleet demo 20261206-030000-k3v9qa",
				`tern job status --fleet demo 20261206-030000-k3v9qa --json | jq '.devices[] | select(.phase == "failed")'`,
			},
			run: jobStatus,
		},
		{
			name:    "job ls",
			args:    "[fleet flags] [--json]",
			short:   "list the jobs retained for the fleet",
			summary: "List the jobs retained on the broker for the fleet: id, device or group,\nversion, command, and when they run.",
			examples: []string{
				"tern job ls --fleet demo",
				"tern job ls --fleet demo --json | jq -r '.[] | select(.canceled | not) | .id'",
			},
			run: jobLs,
		},
		{
			name:  "job edit",
			args:  "[fleet flags] ID [--at TIME] [--cron EXPR] [--args JSON] [... as job submit] [--key K.key]",
			short: "change a job that devices have not started",
			summary: "Publish a new version of job ID with the flags given changed: devices that have\n" +
				"not started it take the new version; devices that have started or ended it\n" +
				"keep what they did, and say so (job.refused).",
			examples: []string{
				"tern job edit --fleet demo 20261206-030000-k3v9qa --at 2026-12-08T04:00:00+01:00 --key ops.key",
				"tern job edit --fleet demo 20261206-030000-k3v9qa --arg ms=800",
			},
			run: jobEdit,
		},
		{
			name:  "job cancel",
			args:  "[fleet flags] ID [--key K.key]",
			short: "cancel a job on every device that has not ended it",
			summary: "Publish a canceled version of job ID: devices that have not started it cancel\n" +
				"it (also those offline now, when they return); a run under way ends as it ends.",
			examples: []string{
				"tern job cancel --fleet demo 20261206-030000-k3v9qa --key ops.key",
			},
			run: jobCancel,
		},
		{
			name:  "job who",
			args:  "[fleet flags] ID | --group NAME [--where KEY=VALUE]... [--json]",
			short: "which devices a job (or a group) reaches",
			summary: "List the devices a job reaches (its device, or its group's members) with their\n" +
				"online flag and the job's phase; or, with --group, the members of a group. A\n" +
				"group's members are the devices whose state reports list it.",
			examples: []string{
				"tern job who --fleet demo 20261206-030000-k3v9qa",
				"tern job who --fleet demo --group gateways --json",
			},
			run: jobWho,
		},
		{
			name:  "rollout start",
			args:  "[fleet flags] (--device ID | --group NAME TARGET) | (--module NAME M.wasm) | (--agent TERND) [--id ID] [--waves 1%,10%,50%,100%] [--interval D] [--start TIME] [--disruptive] [--window SPEC]... [--defer-max D] [--abort-failed P --abort-after N] --key K.key",
			short: "push a target or release a module in waves, under a policy devices follow",
			summary: "Push a target (--device or --group), release a module (--module) or a ternd\n" +
				"(--agent) under a\n" +
				"rollout: waves of the devices in scope (each device computes its own from the\n" +
				"rollout id), opening --interval apart by each device's clock, halted by a\n" +
				"pause or an abort, disruptive changes waiting for maintenance windows and busy\n" +
				"sensors. The rollout's control (running) is published first. Takes the flags\n" +
				"of tern push or tern release too. See docs/rollouts.md.",
			examples: []string{
				"tern rollout start --fleet demo --module relay --waves 1%,10%,50%,100% --interval 30m --abort-failed 5% --abort-after 20 --key ops.key relay.wasm",
				`tern rollout start --fleet demo --group boilers --disruptive --window "sat,sun 02:00-05:00 Europe/Berlin" --key ops.key target.json`,
			},
			run: rolloutStart,
		},
		{
			name:  "rollout watch",
			args:  "[fleet flags] ID [--auto-abort --key K.key] [--timeout D]",
			short: "follow a rollout wave by wave; abort it when its rule trips",
			summary: "Print a rollout's counts by wave and phase as the devices report, until every\n" +
				"device in scope finished (exit 0), some failed or it was aborted (exit 5), or\n" +
				"--timeout (exit 4). With --auto-abort, publish a signed abort when the\n" +
				"rollout's abort rule trips: devices that have not applied the change never do.",
			examples: []string{
				"tern rollout watch --fleet demo relay-20261206-040000 --auto-abort --key ops.key",
			},
			run: rolloutWatch,
		},
		{
			name:  "rollout status",
			args:  "[fleet flags] ID [--devices] [--json]",
			short: "where a rollout stands, wave by wave, from retained reports",
			summary: "Print a rollout's state and its devices' counts by wave and phase, from what\n" +
				"the devices retained on the broker: it works later, for devices offline now.\n" +
				"Exit 0: every device in scope succeeded; 4: some have not finished; 5: the\nrollout was aborted or some device failed it.",
			examples: []string{
				"tern rollout status --fleet demo relay-20261206-040000 --devices",
				`tern rollout status --fleet demo relay-20261206-040000 --json | jq '.devices[] | select(.phase == "failed")'`,
			},
			run: rolloutStatus,
		},
		{
			name:    "rollout ls",
			args:    "[fleet flags] [--json]",
			short:   "list the rollouts retained for the fleet",
			summary: "List the rollouts whose controls are retained on the broker: id, state, the\nchange each governs, its scope and waves.",
			examples: []string{
				"tern rollout ls --fleet demo",
			},
			run: rolloutLs,
		},
		{
			name:    "rollout pause",
			args:    "[fleet flags] ID [--reason TEXT] [--key K.key]",
			short:   "halt a rollout: devices that have not applied it wait",
			summary: "Publish a signed, retained pause for rollout ID: devices that have not applied\nits change wait (those offline now too, when they return) until tern rollout resume.",
			examples: []string{
				`tern rollout pause --fleet demo relay-20261206-040000 --reason "checking wave 2" --key ops.key`,
			},
			run: rolloutPause,
		},
		{
			name:    "rollout resume",
			args:    "[fleet flags] ID [--reason TEXT] [--key K.key]",
			short:   "lift a rollout's pause",
			summary: "Publish a signed, retained running control for a paused rollout: its waves go\non by each device's clock.",
			examples: []string{
				"tern rollout resume --fleet demo relay-20261206-040000 --key ops.key",
			},
			run: rolloutResume,
		},
		{
			name:    "rollout abort",
			args:    "[fleet flags] ID [--reason TEXT] [--key K.key]",
			short:   "stop a rollout for good",
			summary: "Publish a signed, retained abort for rollout ID: devices that have not applied\nits change never will (a later resume is refused); those that did keep it.",
			examples: []string{
				`tern rollout abort --fleet demo relay-20261206-040000 --reason "fails on rev B boards" --key ops.key`,
			},
			run: rolloutAbort,
		},
		{
			name:    "keys generate",
			args:    "NAME [--dir DIR]",
			short:   "generate an operator signing key pair",
			summary: "Generate an operator signing key pair NAME.key (secret) and NAME.pub.",
			examples: []string{
				"tern keys generate ops",
				"tern keys generate ops --dir ~/.tern/keys",
			},
			run: keysGenerate,
		},
		{
			name:    "keys list",
			args:    "[--dir DIR]",
			short:   "list the public keys in DIR, with their ids",
			summary: "List the public keys in a directory, with their ids.",
			examples: []string{
				"tern keys list",
				"tern keys list --dir ~/.tern/keys",
			},
			run: keysList,
		},
		{
			name:  "testbench run",
			args:  "FILE.yaml... [--junit OUT.xml] [--json] [--agent-log FILE] [--seed N] [--ternd PATH]",
			short: "run testbench scenarios",
			summary: "Run hardware-in-the-loop scenarios, one after the other: simulated devices,\n" +
				"faults, assertions (docs/testbench.md). Every file is checked before\n" +
				"anything runs. Exit status 1 when a scenario failed.",
			examples: []string{
				"tern testbench run testbench/scenarios/*.yaml",
				"tern testbench run --junit report.xml --seed 42 testbench/scenarios/broker-outage.yaml",
			},
			run: testbenchRun,
		},
		{
			name:     "version",
			short:    "print the version",
			summary:  "Print tern's version, the Go version it was built with, and its platform.",
			examples: []string{"tern version"},
			run:      versionCmd,
		},
		{
			name:     "help",
			args:     "[COMMAND [SUBCOMMAND]]",
			short:    "a command's flags and examples (the same as tern COMMAND --help)",
			summary:  "Print tern's usage, or a command's flags and examples.",
			examples: []string{"tern help", "tern help release", "tern help module sign"},
			run:      helpCmd,
		},
	}
}

// aliases are other spellings of a command.
var aliases = map[string]string{"--version": "version", "-h": "help", "-help": "help", "--help": "help"}

// lookup finds the command args start with, the longest name first
// ("broker acl" before "broker"), and returns it with the arguments after
// its name.
func lookup(args []string) (*command, []string) {
	var best *command
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		if len(words) > len(args) {
			continue
		}
		match := true
		for j, w := range words {
			a := args[j]
			if j == 0 && aliases[a] != "" {
				a = aliases[a]
			}
			if a != w {
				match = false
				break
			}
		}
		if match && (best == nil || len(words) > len(strings.Fields(best.name))) {
			best = c
		}
	}
	if best == nil {
		return nil, args
	}
	return best, args[len(strings.Fields(best.name)):]
}

// find returns the command named name; nil if none.
func find(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// subcommands lists the commands of group ("module": module build, module
// sign, ...), in the table's order.
func subcommands(group string) []*command {
	var out []*command
	for i := range commands {
		if g, _, ok := strings.Cut(commands[i].name, " "); ok && g == group {
			out = append(out, &commands[i])
		}
	}
	return out
}

// groupHelp is the help of a group of subcommands (tern module --help).
func groupHelp(group string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	writeSynopses(&b, subcommands(group))
	fmt.Fprintf(&b, "\nRun 'tern %s SUBCOMMAND --help' for its flags and examples.\n", group)
	return b.String()
}

// usageText is tern --help: every command of the table, then the fleet
// flags, examples and exit codes.
func usageText() string {
	var b strings.Builder
	b.WriteString("tern: the tern operator command\n\nUsage:\n")
	all := make([]*command, len(commands))
	for i := range commands {
		all[i] = &commands[i]
	}
	writeSynopses(&b, all)
	b.WriteString(usageTail)
	return b.String()
}

// synopsisWidth and shortColumn lay out tern --help: a command's synopsis
// wrapped at synopsisWidth, its one-line description at shortColumn (on
// the synopsis's last line if it fits there, on a line of its own if not).
const (
	synopsisWidth = 78
	shortColumn   = 47
)

func writeSynopses(b *strings.Builder, cmds []*command) {
	for _, c := range cmds {
		head := "  tern " + c.name
		lines := wrapWords(head, synopsisTokens(c.args), synopsisWidth, strings.Repeat(" ", len(head)+1))
		last := lines[len(lines)-1]
		for _, l := range lines[:len(lines)-1] {
			b.WriteString(l + "\n")
		}
		if len(last)+2 <= shortColumn {
			fmt.Fprintf(b, "%-*s%s\n", shortColumn, last, c.short)
		} else {
			fmt.Fprintf(b, "%s\n%s%s\n", last, strings.Repeat(" ", shortColumn), c.short)
		}
	}
}

// synopsisTokens splits a synopsis where it may wrap: between words, but
// not inside brackets ([--version N [--force]]) nor between a flag and
// its value (--key K.key).
func synopsisTokens(args string) []string {
	var out []string
	depth := 0
	for _, w := range strings.Fields(args) {
		join := len(out) > 0 && (depth > 0 ||
			strings.HasPrefix(out[len(out)-1], "-") && !strings.ContainsAny(w[:1], "-[|"))
		if join {
			out[len(out)-1] += " " + w
		} else {
			out = append(out, w)
		}
		depth += strings.Count(w, "[") - strings.Count(w, "]")
	}
	return out
}

// wrapWords appends words to first, a space apart, starting a new line
// (with indent) before a word that would pass width.
func wrapWords(first string, words []string, width int, indent string) []string {
	lines := []string{first}
	for _, w := range words {
		cur := lines[len(lines)-1]
		if len(cur)+1+len(w) > width && strings.TrimSpace(cur) != "" && cur != indent {
			lines = append(lines, indent+w)
			continue
		}
		lines[len(lines)-1] = cur + " " + w
	}
	return lines
}

const usageTail = `
Fleet flags:
  --broker URL   MQTT broker: tcp://host:port, or ssl://host:port for TLS
                 (default tcp://127.0.0.1:1883, or $TERN_BROKER)
  --fleet NAME   fleet name (default "default", or $TERN_FLEET)
  --prefix P     topic prefix (default "tern")
  --ca FILE      CA that signed the broker's certificate, for ssl:// brokers ($TERN_CA);
                 "system" trusts the system's roots
  --cert FILE    client certificate, PEM ($TERN_CERT); with Mosquitto's
                 use_identity_as_username its common name is the username
  --cert-key F   the client certificate's private key, PEM ($TERN_CERT_KEY)
  --server-name N  name the broker's certificate must carry, if not the URL's host

Examples:
  tern broker --listen 127.0.0.1:1883
  tern broker acl --fleet demo --inventory inventory.yaml > /etc/mosquitto/tern.acl
  tern push --broker ssl://broker:8883 --ca ca.pem --cert ops.pem --cert-key ops.key \
            --fleet demo --group heaters '{"relays":{"heater":true}}'
  tern push --fleet demo --device pi-001 '{"relays":{"heater":true}}'
  tern watch --fleet demo --device pi-001 --until-converged --timeout 60s
  tern status --fleet demo --group heaters
  tern watch --fleet demo --group heaters --pushed 7 --until-converged --timeout 10m
  tern plan --module relay.wasm --config 'relay={"lines":{"heater":"GPIO17"}}' \
            --state '{"relays":{"heater":false}}' --target '{"relays":{"heater":true}}'

Exit status:
  0  done; for status: every listed device converged and online
  1  failed (the message says why)
  2  usage: a flag or argument is wrong, a file named is missing or unreadable
     (the message says which)
  3  timeout (watch --timeout)
  4  status: some listed device is not converged, or not online

Run 'tern help COMMAND' or 'tern COMMAND --help' for a command's flags and examples.
`

// dispatch runs the command args name. Main has pointed stderr at stdout
// when the user asked for help.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) (name string, err error) {
	c, rest := lookup(args)
	if c != nil {
		return c.name, c.run(ctx, rest, stdout, stderr)
	}
	group := args[0]
	subs := subcommands(group)
	if len(subs) == 0 {
		return "", usageError{fmt.Errorf("unknown command %q; the commands are in tern --help", group)}
	}
	// A group without (or with an unknown) subcommand.
	var names []string
	for _, s := range subs {
		names = append(names, strings.TrimPrefix(s.name, group+" "))
	}
	fmt.Fprint(stderr, groupHelp(group))
	if len(args) > 1 && isHelp(args[1]) {
		return group, flag.ErrHelp
	}
	if len(args) == 1 {
		return group, usageError{fmt.Errorf("tern %s needs a subcommand: %s", group, strings.Join(names, ", "))}
	}
	return group, usageError{fmt.Errorf("unknown subcommand %q of tern %s; want %s", args[1], group, strings.Join(names, ", "))}
}

func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("version takes no arguments, got %q", fs.Arg(0))}
	}
	fmt.Fprintln(stdout, version.String("tern"))
	return nil
}

// helpCmd is tern help [COMMAND [SUBCOMMAND]]: the usage, or the
// command's --help.
func helpCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("help", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stdout, usageText())
		return nil
	}
	named := fs.Args()
	c, rest := lookup(named)
	if c == nil && len(subcommands(named[0])) == 0 {
		return usageError{fmt.Errorf("unknown command %q; the commands are in tern --help", strings.Join(named, " "))}
	}
	if c != nil && len(rest) > 0 {
		return usageError{fmt.Errorf("tern %s has no subcommand %q", c.name, rest[0])}
	}
	// Help goes to stdout: it was asked for.
	_, err := dispatch(ctx, append(slices.Clone(named), "--help"), stdout, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
