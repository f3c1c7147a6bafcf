package logbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	tests := []struct {
		name   string
		keep   int
		writes []string
		want   string
	}{
		{"nothing written", 0, nil, ""},
		{"everything kept", 0, []string{"a\n", "b\n"}, "a\nb\n"},
		{"within the bound", 4, []string{"ab", "cd"}, "abcd"},
		{"cut at the bound", 3, []string{"ab", "cd"}, "abc\n[...]"},
		{"past the bound", 2, []string{"ab", "cd", "ef"}, "ab\n[...]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Buffer{Keep: tc.keep}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestConcurrent: writers and a reader at once (run with -race) lose no
// write.
func TestConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "%d-%d\n", w, i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Errorf("%d lines kept, want 400", n)
	}
}
