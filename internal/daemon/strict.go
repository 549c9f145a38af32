package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/firmware/update"
	"github.com/tern-iot/tern/internal/suggest"
)

// ErrUnknownKeys matches a configuration refused for keys ternd does not
// know: a misspelt key would otherwise be ignored without a word
// (brokr: runs offline, a misspelt trusted_keys turns signature checks off).
var ErrUnknownKeys = errors.New("unknown keys")

// decodeStrict decodes a configuration, refusing keys no field has. The
// error names each key, its line and the nearest known key. lenient
// decodes what it can and returns the unknown keys as warnings instead.
func decodeStrict(b []byte, c *Config, lenient bool) (warnings []string, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(c)
	if err != nil && err.Error() == "EOF" { // an empty file: all defaults
		return nil, nil
	}
	if m := lineError.FindStringSubmatch(fmt.Sprint(err)); m != nil {
		// A value a field's own decoder refused (a duration without a
		// unit): name its key too.
		var line int
		fmt.Sscan(m[1], &line)
		return nil, badValue(fmt.Sprintf("line %d: %s: %s", line, keyAtLine(b, line), m[2]))
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil, err
	}
	var unknown, other []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			unknown = append(unknown, fmt.Sprintf("line %s: unknown key %q%s", m[1], m[2], didYouMean(m[2])))
		} else {
			other = append(other, e)
		}
	}
	switch {
	case len(other) > 0:
		return nil, errors.New(strings.Join(append(other, unknown...), "; "))
	case lenient:
		*c = Config{}
		return unknown, yaml.Unmarshal(b, c)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownKeys, strings.Join(unknown, "; "))
}

// errBadValue matches a configuration refused for a value of the wrong
// form under a known key.
var errBadValue = errors.New("bad value")

type badValue string

func (e badValue) Error() string        { return string(e) }
func (e badValue) Is(target error) bool { return target == errBadValue }

// lineError is an error a field's decoder returned, with its line.
var lineError = regexp.MustCompile(`^line (\d+): (.*)$`)

// keyAtLine names the key (as a dotted path, e.g.
// module_limits.call_timeout) whose value is on line of the YAML document
// b, or "a value" if none is found.
func keyAtLine(b []byte, line int) string {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return "a value"
	}
	var find func(n *yaml.Node, path string) string
	find = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				if k := find(c, path); k != "" {
					return k
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key, val := n.Content[i], n.Content[i+1]
				p := key.Value
				if path != "" {
					p = path + "." + p
				}
				if val.Line == line && val.Kind == yaml.ScalarNode {
					return p
				}
				if k := find(val, p); k != "" {
					return k
				}
			}
		}
		return ""
	}
	if k := find(&doc, ""); k != "" {
		return k
	}
	return "a value"
}

// unknownField is how yaml.v3 words a key no field has.
var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)

// didYouMean names the known key nearest to key, if one is near enough.
func didYouMean(key string) string {
	if near := suggest.Nearest(key, configKeys(), 3); near != "" {
		return fmt.Sprintf(" (did you mean %q?)", near)
	}
	return ""
}

// configKeys lists every key of the configuration, at any depth.
func configKeys() []string {
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || slices.Contains(keys, name) {
				continue
			}
			keys = append(keys, name)
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Config]())
	return keys
}

// rolledBack reports whether the agent state in dataDir says a newer
// ternd was tried here and rolled back.
func rolledBack(dataDir string) bool {
	st, err := AgentDir(Config{DataDir: dataDir}).Load()
	return err == nil && st.Phase == update.PhaseRolledBack
}

// CheckConfig loads the configuration at path as ternd would, and checks
// what it can without starting: every GPIO grant names a line of the
// board. It returns what is wrong, all at once.
func CheckConfig(path string) error {
	c, err := LoadConfig(path)
	if err != nil {
		return err
	}
	b, err := boards.Lookup(c.Board)
	if err != nil {
		return fmt.Errorf("ternd: %s: board: %w", path, err)
	}
	if errs := grantProblems(c, b); len(errs) > 0 {
		return fmt.Errorf("ternd: %s: %w", path, errors.Join(errs...))
	}
	return nil
}

// grantProblems lists the GPIO grants that name no line of the board.
func grantProblems(c Config, b boards.Board) []error {
	var errs []error
	for i, m := range c.Modules {
		for _, g := range m.Grants.GPIO {
			line, _, _ := strings.Cut(g, "@")
			if _, err := b.Line(line); err != nil {
				errs = append(errs, fmt.Errorf("modules[%d] (%s): grants.gpio %q: board %s has no such line: %w", i, m.Name, g, b.Name, err))
			}
		}
	}
	return errs
}
