package plan_test

import (
	"testing"

	"github.com/xfer-io/xfer/plan"
)

func TestChunks(t *testing.T) {
	for _, c := range []struct {
		cs, size int64
		count    int
	}{
		{4, 0, 1}, // an empty file still travels in one (empty) chunk
		{4, 1, 1},
		{4, 3, 1},
		{4, 4, 1},
		{4, 5, 2},
		{4, 45, 12},
		{1, 0, 1},
		{1, 1, 1},
		{1, 2, 2},
		{1, 15, 15},
		{1 << 20, 0, 1},
		{1 << 20, 1, 1},
		{1 << 20, 1<<20 - 1, 1},
		{1 << 20, 1 << 20, 1},
		{1 << 20, 1<<20 + 1, 2},
		{1 << 20, 10<<20 + 5, 11},
	} {
		got := plan.Chunks(c.size, c.cs)
		if len(got) != c.count {
			t.Errorf("Chunks(%d, %d): %d chunks, want %d", c.size, c.cs, len(got), c.count)
			continue
		}
		var off int64
		for i, ch := range got {
			if ch.Index != int64(i) || ch.Off != off {
				t.Errorf("Chunks(%d, %d)[%d] = %+v, want index %d offset %d", c.size, c.cs, i, ch, i, off)
			}
			last := i == len(got)-1
			switch {
			case c.size == 0 && ch.Len != 0:
				t.Errorf("Chunks(0, %d)[0] = %+v, want empty", c.cs, ch)
			case c.size > 0 && (ch.Len <= 0 || ch.Len > c.cs):
				t.Errorf("Chunks(%d, %d)[%d] = %+v, want 0 < Len <= %d", c.size, c.cs, i, ch, c.cs)
			case !last && ch.Len != c.cs:
				t.Errorf("Chunks(%d, %d)[%d] = %+v: only the last chunk may be short", c.size, c.cs, i, ch)
			}
			off += ch.Len
		}
		if off != c.size {
			t.Errorf("Chunks(%d, %d) cover %d bytes", c.size, c.cs, off)
		}
		if wantLast := c.size - int64(c.count-1)*c.cs; got[len(got)-1].Len != wantLast {
			t.Errorf("Chunks(%d, %d): last chunk %+v, want Len %d", c.size, c.cs, got[len(got)-1], wantLast)
		}
	}
}
