package cli

import (
	"flag"
	"fmt"
	"io"
)

// commandHelp is the part of a command's --help that its flags do not say:
// what it does and how it is used. newFlags prints it, keyed by the
// command's name ("push", "module build"). A command without an entry
// still gets its synopsis and flags.
type commandHelp struct {
	summary  string   // what the command does, a short paragraph
	examples []string // command lines, each with a # comment line before it if needed
}

// helps holds every command's help. Keep the examples runnable: the tests
// check that each command's --help shows them.
var helps = map[string]commandHelp{
	"broker": {
		summary: "Run the embedded MQTT broker, for development and demos: no authentication,\nno persistence. Fleets run Mosquitto or a clustered broker instead.",
		examples: []string{
			"tern broker",
			"tern broker --listen 0.0.0.0:1883 -v",
		},
	},
	"push": {
		summary: "Push a target (the desired state, a JSON object) to one device or to a group,\nretained, so devices that are offline now get it when they come back. Sign it\nwith --key when devices have trusted_keys.",
		examples: []string{
			`tern push --fleet demo --device pi-001 '{"relays":{"heater":true}}'`,
			"tern push --fleet demo --group heaters --key ops.key target.json",
			"jq .target rollout.json | tern push --fleet demo --group floor-2 -",
		},
	},
	"release": {
		summary: "Release a job module to the fleet as module NAME (--module, required): signed\n(the module too, if it is not yet) for the fleet and topic prefix, retained on\nNAME's topic, so every device that runs NAME installs it, now or when it comes\nback, and runs it with the grants its ternd.yaml gives NAME. The file's manifest\nmust name NAME too. Before publishing it prints those grants (--config: one\ndevice's). --version defaults to one more than the retained release; at most\n2^53-1. At most 8 MiB of code.",
		examples: []string{
			"tern release --fleet demo --module thermostat --key ops.key thermostat.wasm",
			"tern release --fleet demo --module relay --key ops.key --version 12 --config ternd.yaml relay.wasm",
			"tern release --fleet demo --module relay --key ops.key --dry-run relay.wasm > release.json && mosquitto_pub -t tern/demo/modules/relay -r -q 1 -f release.json",
		},
	},
	"sign": {
		summary: "Sign a target without connecting to a broker: print the signed envelope (JSON)\nand, on stderr, the topic to publish it on, retained with QoS 1. For an\noperator key that stays on an offline machine.",
		examples: []string{
			`tern sign --fleet demo --device pi-001 --key ops.key '{"relays":{"heater":true}}' > target.json`,
			"mosquitto_pub -t tern/demo/devices/pi-001/target -r -q 1 -f target.json",
			"tern sign --fleet demo --group heaters --key ops.key --version 8 target.json",
		},
	},
	"status": {
		summary: "Print a table of devices from their retained reports: online, target version,\nconverged or not, phase, last error, age of the report, module versions.\n" +
			"It collects until no new report came for 300ms, or for at most --wait.\n" +
			"Exit status: 0 when every listed device is converged and online, 4 when some\nis not (so a script can gate a rollout), 1 when no device reported at all.",
		examples: []string{
			"tern status --fleet demo",
			"tern status --fleet demo --group heaters --json | jq '.[] | select(.converged | not)'",
			"tern status --fleet demo --device pi-001 && echo pi-001 is done",
		},
	},
	"watch": {
		summary: "Print devices' state changes and events as they happen: one device (--device),\none group (--group), or every device of the fleet. Events delivered twice are\nshown once (by their seq). With --version N, show the rollout of target\nversion N as one line, updated in place on a terminal:\n" +
			"  rollout v7: 812/1000 converged, 3 failed, 185 pending, 4 offline\n" +
			"(offline overlaps the other counts; for a group push the version a device\nreports is the sum of its targets' versions.) With --until-converged, exit 0\nonce every watched device converged, or 3 at --timeout.",
		examples: []string{
			"tern watch --fleet demo --device pi-001",
			"tern watch --fleet demo --group heaters --version 7 --until-converged --timeout 10m",
			"tern watch --fleet demo --json | jq -c 'select(.type == \"event\")'",
		},
	},
	"plan": {
		summary: "Preview offline what a device would do: plan from a state to a target with\nthe given job modules, and print the plan as text, Mermaid, DOT or JSON.",
		examples: []string{
			`tern plan --module relay.wasm --config 'relay={"lines":{"heater":"GPIO17"}}' --state '{"relays":{"heater":false}}' --target '{"relays":{"heater":true}}'`,
			"tern plan --module relay.wasm --target target.json --format mermaid",
		},
	},
	"module build": {
		summary: "Build a job module from a Go package (GOOS=wasip1 GOARCH=wasm), with its\nmanifest embedded as a custom section.",
		examples: []string{
			"tern module build ./plugins/relay",
			"tern module build ./plugins/relay -o relay.wasm",
		},
	},
	"module sign": {
		summary: "Sign a module so that devices trusting the key accept it (in place unless -o).",
		examples: []string{
			"tern module sign --key ops.key relay.wasm",
			"tern module sign --key ops.key relay.wasm -o relay-signed.wasm",
		},
	},
	"module inspect": {
		summary: "Print a module's manifest, hash and signer; with --trust, check the signature.",
		examples: []string{
			"tern module inspect relay.wasm",
			"tern module inspect relay.wasm --trust ops.pub --json",
		},
	},
	"keys generate": {
		summary: "Generate an operator signing key pair NAME.key (secret) and NAME.pub.",
		examples: []string{
			"tern keys generate ops",
			"tern keys generate ops --dir ~/.tern/keys",
		},
	},
	"keys list": {
		summary: "List the public keys in a directory, with their ids.",
		examples: []string{
			"tern keys list",
			"tern keys list --dir ~/.tern/keys",
		},
	},
}

// groupHelp is the help of a command that only holds subcommands.
var groupHelp = map[string]string{
	"module": "Usage:\n" +
		"  tern module build DIR [-o OUT.wasm]              build a module from Go, with its manifest section\n" +
		"  tern module sign --key KEY.key M.wasm [-o OUT]   sign a module (in place unless -o)\n" +
		"  tern module inspect M.wasm [--trust KEY.pub]...  print its manifest, hash and signer\n\n" +
		"Run 'tern module SUBCOMMAND --help' for its flags and examples.\n",
	"keys": "Usage:\n" +
		"  tern keys generate NAME [--dir DIR]   generate an operator signing key pair\n" +
		"  tern keys list [--dir DIR]            list the public keys in DIR\n\n" +
		"Run 'tern keys SUBCOMMAND --help' for its flags and examples.\n",
}

// printHelp writes a command's full help: synopsis, summary, flags,
// examples.
func printHelp(w io.Writer, fs *flag.FlagSet, name, synopsis string) {
	fmt.Fprintf(w, "Usage: tern %s %s\n", name, synopsis)
	h := helps[name]
	if h.summary != "" {
		fmt.Fprintf(w, "\n%s\n", h.summary)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	if len(h.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range h.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// wantsHelp reports whether a command line asks for help anywhere before
// a "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a != "help" && isHelp(a) {
			return true
		}
	}
	return false
}

// usageHint tells a user who typed a command wrong where to look.
func usageHint(cmd string) string {
	return fmt.Sprintf("Run 'tern help %s' for its usage and examples.", cmd)
}
