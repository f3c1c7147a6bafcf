package plural

import "testing"

func TestOf(t *testing.T) {
	for _, c := range []struct {
		n    int64
		noun string
		want string
	}{
		{0, "file", "0 files"},
		{1, "file", "1 file"},
		{2, "file", "2 files"},
		{1, "directory", "1 directory"},
		{3, "directory", "3 directories"},
		{2, "key", "2 keys"},
		{2, "day", "2 days"},
		{2, "more error", "2 more errors"},
		{1, "device file", "1 device file"},
		{5, "device file", "5 device files"},
	} {
		if got := Of(c.n, c.noun); got != c.want {
			t.Errorf("Of(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
