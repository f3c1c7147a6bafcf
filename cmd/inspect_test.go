package cmd

import "testing"

// TestSizeTexts: size prints counts and bytes as rclone size does.
func TestSizeTexts(t *testing.T) {
	for _, c := range []struct {
		n            int64
		count, bytes string
	}{
		{0, "0", "0 B"},
		{11, "11", "11 B"},
		{999, "999", "999 B"},
		{1000, "1k", "1000 B"},
		{1024, "1.024k", "1 KiB"},
		{1025, "1.025k", "1.001 KiB"},
		{1234, "1.234k", "1.205 KiB"},
		{5 << 20, "5.243M", "5 MiB"},
		{3 << 30, "3.221G", "3 GiB"},
	} {
		if got := countText(c.n); got != c.count {
			t.Errorf("countText(%d) = %q, want %q", c.n, got, c.count)
		}
		if got := byteText(c.n); got != c.bytes {
			t.Errorf("byteText(%d) = %q, want %q", c.n, got, c.bytes)
		}
	}
}

// TestCatRange: where cat starts in a file of a size, and how much it
// writes.
func TestCatRange(t *testing.T) {
	for _, c := range []struct {
		r              catRange
		size, off, cnt int64
	}{
		{catRange{0, -1}, 10, 0, -1},
		{catRange{-3, -1}, 10, 7, -1},
		{catRange{-30, -1}, 10, 0, -1},
		{catRange{4, 2}, 10, 4, 2},
	} {
		off, cnt := c.r.of(c.size)
		if off != c.off || cnt != c.cnt {
			t.Errorf("%+v of %d = %d, %d; want %d, %d", c.r, c.size, off, cnt, c.off, c.cnt)
		}
	}
}
