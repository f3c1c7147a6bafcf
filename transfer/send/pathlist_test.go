package send

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestPathList(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		spill int
	}{
		{"empty", 0, 4},
		{"in memory", 3, 4},
		{"exactly the limit", 4, 4},
		{"spilled", 1000, 4},
		{"default limit", 20, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &pathList{spillAfter: tc.spill}
			defer l.close()
			var want []string
			for i := range tc.n {
				p := fmt.Sprintf("dir %d/name\nwith newline ü %d", i%7, i)
				want = append(want, p)
				if err := l.add(p); err != nil {
					t.Fatal(err)
				}
			}
			if l.len() != tc.n {
				t.Errorf("len %d, want %d", l.len(), tc.n)
			}
			if spilled := l.f != nil; spilled != (tc.spill > 0 && tc.n > tc.spill) {
				t.Errorf("spilled = %v with %d paths and limit %d", spilled, tc.n, tc.spill)
			}
			for range 2 { // reading twice gives the same
				var got []string
				if err := l.each(func(p string) error { got = append(got, p); return nil }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("got %d paths, want %d (first difference matters)", len(got), len(want))
				}
			}
			stop := errors.New("stop")
			if tc.n > 0 {
				if err := l.each(func(string) error { return stop }); err != stop {
					t.Errorf("each returned %v, want the callback's error", err)
				}
			}
		})
	}
}
