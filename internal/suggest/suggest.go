// Package suggest finds the word someone most likely meant: the nearest
// known key to a misspelt one, for "did you mean" in configuration errors
// (ternd.yaml, testbench scenarios).
package suggest

// Nearest returns the word of words at most maxEdits edits (insertions,
// deletions, substitutions) from s, the nearest first found, or "".
func Nearest(s string, words []string, maxEdits int) string {
	best, bestD := "", maxEdits+1
	for _, w := range words {
		if d := Distance(s, w); d < bestD {
			best, bestD = w, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
