package state

import (
	"fmt"
	"strings"
)

// Pattern is a path pattern jobs bind to, such as "/relays/:name" or
// "/rooms/:room/heater". A token ":x" matches any single token and binds it
// to the parameter x; every other token matches itself. Tokens are JSON
// Pointer tokens, with the same ~0 and ~1 escapes; the ":" is looked for
// after unescaping, so a pattern cannot name a literal key that starts
// with ":". The zero Pattern matches only the whole document.
type Pattern struct {
	segs []segment
}

type segment struct {
	text  string // the literal token, or the parameter's name
	param bool
}

// ParsePattern decodes a path pattern. Like a JSON Pointer it is "" (the
// whole document) or starts with "/". Errors wrap ErrInvalidPattern: a
// missing leading "/", a bad ~ escape, a parameter with no name (":") or a
// name used twice.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, nil
	}
	if s[0] != '/' {
		return Pattern{}, fmt.Errorf("%w %q: does not start with \"/\"", ErrInvalidPattern, s)
	}
	var segs []segment
	seen := map[string]bool{}
	for raw := range strings.SplitSeq(s[1:], "/") {
		tok, err := unescape(raw)
		if err != nil {
			return Pattern{}, fmt.Errorf("%w %q: %s", ErrInvalidPattern, s, err)
		}
		name, isParam := strings.CutPrefix(tok, ":")
		if !isParam {
			segs = append(segs, segment{text: tok})
			continue
		}
		if name == "" {
			return Pattern{}, fmt.Errorf("%w %q: parameter %d has no name", ErrInvalidPattern, s, len(segs)+1)
		}
		if seen[name] {
			return Pattern{}, fmt.Errorf("%w %q: parameter %q appears twice", ErrInvalidPattern, s, name)
		}
		seen[name] = true
		segs = append(segs, segment{text: name, param: true})
	}
	return Pattern{segs: segs}, nil
}

// String returns the pattern as ParsePattern reads it.
func (p Pattern) String() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		tok := s.text
		if s.param {
			tok = ":" + tok
		}
		escaper.WriteString(&b, tok)
	}
	return b.String()
}

// Len returns the number of tokens the pattern matches.
func (p Pattern) Len() int { return len(p.segs) }

// Match reports whether ptr has exactly the pattern's length and matches
// it token by token, and returns the parameters it binds (nil for a
// pattern without parameters). A pattern never matches a prefix or an
// extension of ptr.
func (p Pattern) Match(ptr Pointer) (params map[string]string, ok bool) {
	if len(ptr) != len(p.segs) {
		return nil, false
	}
	for i, s := range p.segs {
		if !s.param && s.text != ptr[i] {
			return nil, false
		}
	}
	for i, s := range p.segs {
		if s.param {
			if params == nil {
				params = make(map[string]string, len(p.segs)-i)
			}
			params[s.text] = ptr[i]
		}
	}
	return params, true
}

// Overlaps reports whether the pattern and ptr can name the same place or
// one inside the other: ptr is a prefix of a path the pattern matches, or
// a path the pattern matches is a prefix of ptr. Whoever writes ptr then
// writes what a job bound to the pattern works on.
func (p Pattern) Overlaps(ptr Pointer) bool {
	for i := range min(len(p.segs), len(ptr)) {
		if s := p.segs[i]; !s.param && s.text != ptr[i] {
			return false
		}
	}
	return true
}
