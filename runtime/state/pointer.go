package state

import (
	"fmt"
	"strings"
)

// Pointer is a JSON Pointer (RFC 6901) as its decoded reference tokens:
// "/a~1b/0" is Pointer{"a/b", "0"}. A nil or empty Pointer names the whole
// document.
type Pointer []string

// ParsePointer decodes a JSON Pointer. "" is the whole document; anything
// else must start with "/". In a token "~0" stands for "~" and "~1" for
// "/"; any other "~" is an error (ErrInvalidPointer).
func ParsePointer(s string) (Pointer, error) {
	if s == "" {
		return Pointer{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("%w %q: does not start with \"/\"", ErrInvalidPointer, s)
	}
	p := make(Pointer, 0, strings.Count(s, "/"))
	for raw := range strings.SplitSeq(s[1:], "/") {
		tok, err := unescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %s", ErrInvalidPointer, s, err)
		}
		p = append(p, tok)
	}
	return p, nil
}

// badEscape is unescape's complaint; ParsePointer and ParsePattern wrap it.
type badEscape string

func (e badEscape) Error() string { return string(e) }

// unescape decodes ~0 and ~1 in one token. Scanning left to right decodes
// "~01" as "~1", as RFC 6901 section 4 requires.
func unescape(raw string) (string, error) {
	i := strings.IndexByte(raw, '~')
	if i < 0 {
		return raw, nil
	}
	var b strings.Builder
	b.Grow(len(raw))
	b.WriteString(raw[:i])
	for ; i < len(raw); i++ {
		c := raw[i]
		if c != '~' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(raw) {
			return "", badEscape(fmt.Sprintf("%q ends with \"~\" (write ~0 for ~, ~1 for /)", raw))
		}
		switch raw[i+1] {
		case '0':
			b.WriteByte('~')
		case '1':
			b.WriteByte('/')
		default:
			return "", badEscape(fmt.Sprintf("%q has escape %q (write ~0 for ~, ~1 for /)", raw, raw[i:i+2]))
		}
		i++
	}
	return b.String(), nil
}

// MustPointer is ParsePointer for constants; it panics on an invalid pointer.
func MustPointer(s string) Pointer {
	p, err := ParsePointer(s)
	if err != nil {
		panic(err)
	}
	return p
}

var escaper = strings.NewReplacer("~", "~0", "/", "~1")

// String returns p as a JSON Pointer, escaping "~" and "/" in tokens, so
// that ParsePointer(p.String()) equals p.
func (p Pointer) String() string {
	n := 0
	for _, tok := range p {
		n += 1 + len(tok)
	}
	var b strings.Builder
	b.Grow(n)
	for _, tok := range p {
		b.WriteByte('/')
		if strings.ContainsAny(tok, "~/") {
			escaper.WriteString(&b, tok)
		} else {
			b.WriteString(tok)
		}
	}
	return b.String()
}

// Parent returns p without its last token; the parent of the whole
// document is the whole document. The result has no spare capacity, so
// appending to it never overwrites p.
func (p Pointer) Parent() Pointer {
	if len(p) == 0 {
		return p
	}
	return p[: len(p)-1 : len(p)-1]
}

// Append returns a new Pointer: p followed by tok. It never shares memory
// with p, so pointers built from one prefix do not disturb each other.
func (p Pointer) Append(tok ...string) Pointer {
	q := make(Pointer, len(p)+len(tok))
	copy(q, p)
	copy(q[len(p):], tok)
	return q
}

// HasPrefix reports whether q names p or one of its ancestors: every
// token of q equals p's token at the same place. Every pointer has the
// whole document as a prefix.
func (p Pointer) HasPrefix(q Pointer) bool {
	if len(q) > len(p) {
		return false
	}
	for i := range q {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Overlaps reports whether p and q name the same place or one lies inside
// the other: a change at one can change what the other names. Tasks whose
// paths do not overlap may run in parallel.
func Overlaps(p, q Pointer) bool {
	return p.HasPrefix(q) || q.HasPrefix(p)
}
