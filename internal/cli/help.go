package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// printHelp writes a command's full help: synopsis, summary, flags,
// examples.
func printHelp(w io.Writer, fs *flag.FlagSet, name string) {
	h := find(name)
	if h == nil { // a command newFlags was given but the table lacks: a bug the tests catch
		h = &command{name: name}
	}
	fmt.Fprintf(w, "Usage: %s\n", strings.TrimSpace("tern "+name+" "+h.args))
	if h.summary != "" {
		fmt.Fprintf(w, "\n%s\n", h.summary)
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		printExamples(w, h.examples)
		return
	}
	fmt.Fprintf(w, "\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
	printExamples(w, h.examples)
}

func printExamples(w io.Writer, examples []string) {
	if len(examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range examples {
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

// usageHint tells a user who typed a command wrong where to look; cmd is
// the command's name, "" when there was none.
func usageHint(cmd string) string {
	if cmd == "" {
		return "Run 'tern --help' for the commands."
	}
	return fmt.Sprintf("Run 'tern help %s' for its usage and examples.", cmd)
}
