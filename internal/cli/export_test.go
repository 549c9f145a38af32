package cli

// CommandNames lists the commands of the table Main dispatches from
// ("push", "module build", ...), for the tests that hold every command to
// its help and docs.
func CommandNames() []string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return names
}
