package transfer

import "testing"

// TestOverlap: a copy overlaps its source when the tree would land in or
// over itself, or a file onto itself; with a name (copyto, moveto) the
// copy's own path counts, so a rename within a directory is no overlap.
func TestOverlap(t *testing.T) {
	for _, c := range []struct {
		sp, dp, name string
		dir, want    bool
	}{
		{"/a/d", "/a/d", "", true, true},
		{"/a/d", "/a/d/sub", "", true, true},
		{"/a/d", "/a", "", true, true},
		{"/a/d", "/b", "", true, false},
		{"/a/d", "/a", "e", true, false},
		{"/a/d", "/a", "d", true, true},
		{"/a/d", "/a/d", "in", true, true},
		{"/a/f.txt", "/a", "", false, true},
		{"/a/f.txt", "/b", "", false, false},
		{"/a/f.txt", "/a", "g.txt", false, false},
		{"/a/f.txt", "/a", "f.txt", false, true},
		{"/a/f.txt", "/b", "f.txt", false, false},
	} {
		err := overlap(Endpoint{Path: c.sp}, Endpoint{Path: c.dp}, c.sp, c.dp, c.name, c.dir)
		if (err != nil) != c.want {
			t.Errorf("overlap(%s, %s, name %q, dir %v): %v, want overlap %v", c.sp, c.dp, c.name, c.dir, err, c.want)
		}
	}
}
