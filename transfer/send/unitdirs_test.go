package send

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/plan"
)

func TestSpliceLister(t *testing.T) {
	top := []plan.Entry{{Path: "a", Type: plan.TypeDir}, {Path: "b", Type: plan.TypeDir}, {Path: "c", Type: plan.TypeFile}, {Path: "d", Type: plan.TypeDir}}
	tests := []struct {
		name    string
		srcDirs []string
		skip    string // SkipDir right after this entry
		want    []string
	}{
		{"the source has every directory", []string{"a", "b", "d"}, "", []string{"a", "b", "c", "d"}},
		{"contents of what the source lacks", []string{"b"}, "", []string{"a", "a/x", "a/x/y", "b", "c", "d", "d/x", "d/x/y"}},
		{"skipped before its contents", []string{"b"}, "a", []string{"a", "b", "c", "d", "d/x", "d/x/y"}},
		{"skipped inside the contents", nil, "b/x", []string{"a", "a/x", "a/x/y", "b", "b/x", "c", "d", "d/x", "d/x/y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dirs := map[string]bool{}
			for _, d := range tt.srcDirs {
				dirs[d] = true
			}
			contents := func(d string) plan.Lister {
				return plan.Prefixed(&skipLister{entries: []plan.Entry{{Path: "x", Type: plan.TypeDir}, {Path: "x/y", Type: plan.TypeFile}}}, d)
			}
			s := &spliceLister{l: &plan.SliceLister{Entries: slices.Clone(top)}, srcDirs: dirs, contents: contents}
			var got []string
			for range 100 {
				en, err := s.Next(context.Background())
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, en.Path)
				if en.Path == tt.skip {
					s.SkipDir()
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("listed %q, want %q", got, tt.want)
			}
		})
	}
}

// skipLister lists entries, leaving out the contents of a directory
// after SkipDir.
type skipLister struct {
	entries []plan.Entry
	next    int // the index of the entry Next returns
}

// Next implements plan.Lister.
func (l *skipLister) Next(context.Context) (plan.Entry, error) {
	if l.next >= len(l.entries) {
		return plan.Entry{}, io.EOF
	}
	l.next++
	return l.entries[l.next-1], nil
}

// SkipDir implements plan.DirSkipper.
func (l *skipLister) SkipDir() {
	dir := l.entries[l.next-1].Path + "/"
	for l.next < len(l.entries) && strings.HasPrefix(l.entries[l.next].Path, dir) {
		l.next++
	}
}
