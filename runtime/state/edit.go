package state

import (
	"fmt"
	"strconv"
)

// Get returns the value p names in doc. Array elements are named by
// decimal indices ("0", "17"; no sign, no leading zeros); "-" and indices
// past the end are not found. The value is doc's own, not a copy.
func Get(doc any, p Pointer) (any, bool) {
	cur := doc
	for _, tok := range p {
		switch n := cur.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := arrayIndex(tok)
			if !ok || i >= len(n) {
				return nil, false
			}
			cur = n[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Set puts v at p in doc and returns the new root, which is v itself when
// p is the whole document. Whatever is missing on the way is created as an
// object (so "-" there is an object key, not an append), and a null on the
// way counts as missing, so Set(nil, p, v) builds a document. In an array a decimal index replaces
// an existing element (ErrIndex if there is none) and "-" appends. A path
// through a string, number or bool is ErrNotContainer. On error doc is
// unchanged.
//
// Set changes doc in place where it can: Clone it first to keep the old
// document. v is stored as given, not copied.
func Set(doc any, p Pointer, v any) (any, error) {
	return set(doc, p, 0, v)
}

func set(node any, p Pointer, i int, v any) (any, error) {
	if i == len(p) {
		return v, nil
	}
	tok := p[i]
	switch n := node.(type) {
	case nil:
		child, _ := set(nil, p, i+1, v) // building from nothing cannot fail
		return map[string]any{tok: child}, nil
	case map[string]any:
		if n == nil {
			n = make(map[string]any, 1)
		}
		child, err := set(n[tok], p, i+1, v)
		if err != nil {
			return node, err
		}
		n[tok] = child
		return n, nil
	case []any:
		if tok == "-" {
			child, _ := set(nil, p, i+1, v)
			return append(n, child), nil
		}
		idx, ok := arrayIndex(tok)
		if !ok || idx >= len(n) {
			return node, fmt.Errorf("%w: set %s: %s has %d elements, no %q", ErrIndex, p, where(p[:i]), len(n), tok)
		}
		child, err := set(n[idx], p, i+1, v)
		if err != nil {
			return node, err
		}
		n[idx] = child
		return n, nil
	default:
		return node, fmt.Errorf("%w: set %s: %s is a %s", ErrNotContainer, p, where(p[:i]), kind(node))
	}
}

// Delete removes what p names from doc and returns the new root (nil when
// p is the whole document). Deleting what is absent is not an error; a
// path through a string, number or bool is ErrNotContainer, as for Set.
// Removing an array element shifts the later ones down and yields a new
// slice; objects are changed in place, so Clone first to keep the old
// document.
func Delete(doc any, p Pointer) (any, error) {
	if len(p) == 0 {
		return nil, nil
	}
	return del(doc, p, 0)
}

func del(node any, p Pointer, i int) (any, error) {
	tok, last := p[i], i == len(p)-1
	switch n := node.(type) {
	case nil:
		return node, nil
	case map[string]any:
		child, ok := n[tok]
		if !ok {
			return node, nil
		}
		if last {
			delete(n, tok)
			return n, nil
		}
		child, err := del(child, p, i+1)
		if err != nil {
			return node, err
		}
		n[tok] = child
		return n, nil
	case []any:
		idx, ok := arrayIndex(tok)
		if !ok || idx >= len(n) {
			return node, nil
		}
		if last {
			out := make([]any, 0, len(n)-1)
			out = append(out, n[:idx]...)
			return append(out, n[idx+1:]...), nil
		}
		child, err := del(n[idx], p, i+1)
		if err != nil {
			return node, err
		}
		n[idx] = child
		return n, nil
	default:
		return node, fmt.Errorf("%w: delete %s: %s is a %s", ErrNotContainer, p, where(p[:i]), kind(node))
	}
}

// Put is how a job's effect lands: v at p, or, when v is nil, p deleted
// (a target's null means "absent"). It changes doc in place as Set and
// Delete do, and returns the new root.
func Put(doc any, p Pointer, v any) (any, error) {
	if v == nil {
		return Delete(doc, p)
	}
	return Set(doc, p, v)
}

// MergePatch applies patch to doc as JSON Merge Patch (RFC 7386) and
// returns the result: an object patch is merged key by key, a null value
// in it deletes the key, and any other patch replaces doc whole.
//
// Like Set, MergePatch changes doc in place where it can; Clone it first to
// keep it. patch is never changed and the result shares no memory with it,
// so patch may be kept and applied again. doc and patch must not share
// memory themselves.
func MergePatch(doc, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return Clone(patch)
	}
	tm, ok := doc.(map[string]any)
	if !ok || tm == nil {
		tm = make(map[string]any, len(pm))
	}
	for k, pv := range pm {
		if pv == nil {
			delete(tm, k)
			continue
		}
		tm[k] = MergePatch(tm[k], pv)
	}
	return tm
}

// arrayIndex decodes an array index token: "0" or a decimal number without
// leading zeros (RFC 6901 section 4).
func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 18 || (tok[0] == '0' && len(tok) > 1) {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil
}

// where names a place in an error message.
func where(p Pointer) string {
	if len(p) == 0 {
		return "the document"
	}
	return strconv.Quote(p.String())
}

// kind names a value's JSON type in an error message.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	if _, ok := number(v); ok {
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// Overlay lays top over base: objects key by key, recursively; anything
// else (null included) replaces. Neither is changed. It is how a device's
// targets combine (fleet.CombineTargets) and how a target's layers lie
// over it (runtime/layer): null stays in the result, where MergePatch
// would delete.
func Overlay(base, top any) any {
	tm, ok := top.(map[string]any)
	bm, ok2 := base.(map[string]any)
	if !ok || !ok2 {
		return Clone(top)
	}
	out := Clone(bm).(map[string]any)
	for k, v := range tm {
		if old, ok := out[k]; ok {
			out[k] = Overlay(old, v)
		} else {
			out[k] = Clone(v)
		}
	}
	return out
}
