package plan_test

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/plan"
)

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int // sign
	}{
		{"a", "a", 0},
		{"a/b", "a/b", 0},
		{"a", "b", -1},
		{"B", "a", -1},   // bytewise: upper case first
		{"a", "a/x", -1}, // a directory before its contents
		{"a", "a-b", -1}, // prefix first
		{"a/x", "a-b", -1},
		{"a/x", "a.b", -1},
		{"a/x", "a b", -1},
		{"a/x", "a\nb", -1}, // '/' sorts before every byte, even control bytes
		{"a/x", "a\x01", -1},
		{"a/zzz", "a0", -1},
		{"a/b/c", "a-", -1},
		{"a-b", "a.b", -1},
		{"a.b", "a0", -1},
		{"a/b", "a/b/c", -1},
		{"a/b/c", "a/bc", -1},
		{"a/b-c", "a/b/c", 1},
		{"ab", "a/b", 1},
		{"a", "ä", -1},
		{"z", "ä", -1},    // UTF-8 bytes above ASCII
		{"ä/x", "ä-", -1}, // multi-byte names are still compared per component
		{"é", "ê", -1},
		{"\xff", "\xfe/x", 1},
	} {
		got := plan.Compare(c.a, c.b)
		if cmp.Compare(got, 0) != c.want {
			t.Errorf("Compare(%q, %q) = %d, want sign %d", c.a, c.b, got, c.want)
		}
		if rev := plan.Compare(c.b, c.a); cmp.Compare(rev, 0) != -c.want {
			t.Errorf("Compare(%q, %q) = %d, want sign %d", c.b, c.a, rev, -c.want)
		}
	}
}

// refCompare is the definition: component by component, bytewise, a path
// before its extensions.
func refCompare(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

func randPath(r *rand.Rand) string {
	alphabet := []string{"a", "b", "B", "-", ".", " ", "\n", "0", "ä", "\xff", "\x01"}
	n := 1 + r.IntN(3)
	comps := make([]string, n)
	for i := range comps {
		var b strings.Builder
		for range 1 + r.IntN(3) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		comps[i] = b.String()
	}
	return strings.Join(comps, "/")
}

func TestCompareProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	set := []string{"a", "a/b", "a-b", "a.b", "a0", "B"}
	for range 300 {
		set = append(set, randPath(r))
	}
	sign := func(a, b string) int { return cmp.Compare(plan.Compare(a, b), 0) }
	for _, a := range set {
		if got := plan.Compare(a, a); got != 0 {
			t.Errorf("Compare(%q, itself) = %d", a, got)
		}
		for _, b := range set {
			ab := sign(a, b)
			if ab != -sign(b, a) {
				t.Fatalf("not antisymmetric: Compare(%q, %q) = %d, Compare(%q, %q) = %d", a, b, ab, b, a, sign(b, a))
			}
			if ab != refCompare(a, b) {
				t.Fatalf("Compare(%q, %q) = %d, component-wise order says %d", a, b, ab, refCompare(a, b))
			}
		}
	}
	// Transitivity over all triples of a subset (the full set would be slow).
	sub := set[:120]
	for _, a := range sub {
		for _, b := range sub {
			if sign(a, b) > 0 {
				continue
			}
			for _, c := range sub {
				if sign(b, c) <= 0 && sign(a, c) > 0 {
					t.Fatalf("not transitive: %q <= %q <= %q but Compare(%q, %q) > 0", a, b, c, a, c)
				}
			}
		}
	}
	// Sorting with Compare lists every directory immediately before its
	// contents (what a depth-first walk produces).
	sorted := slices.Clone(set)
	slices.SortFunc(sorted, plan.Compare)
	sorted = slices.Compact(sorted)
	for i, p := range sorted {
		last := i
		for j := i + 1; j < len(sorted); j++ {
			if strings.HasPrefix(sorted[j], p+"/") {
				if j != last+1 {
					t.Fatalf("contents of %q are not contiguous: %q at %d after %q", p, sorted[j], j, sorted[last+1])
				}
				last = j
			}
		}
	}
}

func TestPathHelpers(t *testing.T) {
	for _, c := range []struct{ dir, name, joined, base, parent string }{
		{"", "a", "a", "a", ""},
		{"a", "b", "a/b", "b", "a"},
		{"a/b", "c d", "a/b/c d", "c d", "a/b"},
	} {
		if got := plan.Join(c.dir, c.name); got != c.joined {
			t.Errorf("Join(%q, %q) = %q, want %q", c.dir, c.name, got, c.joined)
		}
		if got := plan.Base(c.joined); got != c.base {
			t.Errorf("Base(%q) = %q, want %q", c.joined, got, c.base)
		}
		if got := plan.Dir(c.joined); got != c.parent {
			t.Errorf("Dir(%q) = %q, want %q", c.joined, got, c.parent)
		}
	}
	for _, c := range []struct {
		name string
		want bool
	}{
		{".xfer-0123456789abcdef.part", true},
		{".xfer-0123456789abcdef.journal", true},
		{".xfer-0123.part", false},              // too short: a user's file
		{".xfer-0123456789abcdef0.part", false}, // too long
		{".xfer-0123456789ABCDEF.part", false},  // upper case
		{".xfer-0123456789abcdeg.part", false},  // not hex
		{".xfer-.part", false},
		{".xfer-0123456789abcdef.s0.journal", false},
		{".xfer-0123456789abcdef.s1023.journal", false}, // older xfer's share journals
		{".xfer-0123456789abcde.part", false},
		{".xfer-0123.journal", false},
		{".xfer-lock", false},
		{".xfer-foo", false},
		{".xfer-0123456789abcdef.partial", false},
		{"xfer-0123456789abcdef.part", false},
		{"a.xfer-0123456789abcdef.part", false},
		{".xfer-0123456789abcdef", false},
		{"x.journal", false},
	} {
		if got := plan.IsInternal(c.name); got != c.want {
			t.Errorf("IsInternal(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}
