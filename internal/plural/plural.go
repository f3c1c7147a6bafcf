// Package plural writes counts of things as people read them: "1 file",
// "2 files", "3 directories". Every message that counts something uses
// it, so that no message says "1 files".
package plural

import (
	"strconv"
	"strings"
)

// Integer is what a count can be.
type Integer interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64
}

// Of formats n things named by the singular noun: "1 file", "2 files",
// "2 directories". For a phrase the last word takes the plural ("2 more
// errors", "2 special files").
func Of[N Integer](n N, noun string) string {
	c := strconv.FormatInt(int64(n), 10)
	if n == 1 {
		return c + " " + noun
	}
	if stem, ok := strings.CutSuffix(noun, "y"); ok && stem != "" && !strings.ContainsRune("aeiou", rune(stem[len(stem)-1])) {
		return c + " " + stem + "ies"
	}
	return c + " " + noun + "s"
}
