package plan_test

import (
	"math/rand/v2"
	"slices"
	"sync"
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

func TestBalancerEvenWithoutDone(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, lanes := range []int{1, 2, 3, 8} {
		for _, maxSize := range []int64{1, 1000, 64 << 20} {
			b := plan.NewBalancer(lanes)
			load := make([]int64, lanes)
			used := make([]bool, lanes)
			var biggest int64
			for i := range 2000 {
				size := r.Int64N(maxSize + 1)
				if i%97 == 0 {
					size = maxSize // an occasional big one
				}
				biggest = max(biggest, size)
				least := slices.Min(load)
				lane := b.Assign(size)
				if lane < 0 || lane >= lanes {
					t.Fatalf("%d lanes: Assign returned lane %d", lanes, lane)
				}
				if load[lane] != least {
					t.Fatalf("%d lanes, item %d: lane %d has %d bytes, but the least loaded has %d (loads %v)",
						lanes, i, lane, load[lane], least, load)
				}
				load[lane] += size
				used[lane] = true
				if spread := slices.Max(load) - slices.Min(load); spread > biggest {
					t.Fatalf("%d lanes, item %d: loads %v differ by %d, more than the largest item %d",
						lanes, i, load, spread, biggest)
				}
			}
			if slices.Contains(used, false) {
				t.Errorf("%d lanes (items up to %d): some lane never used: %v", lanes, maxSize, used)
			}
		}
	}
}

func TestBalancerReusesFreedLanes(t *testing.T) {
	// Lanes are named by the initial item that occupies them.
	for _, c := range []struct {
		name   string
		assign []int64       // initial items, one per lane
		done   map[int]int64 // bytes released from the lane of initial item i
		next   []int64
		want   []int // the initial item whose lane each next item must go to
	}{
		{"freed lane first", []int64{100, 100, 100, 100}, map[int]int64{2: 100}, []int64{50, 10, 30}, []int{2, 2, 2}},
		{"partly freed", []int64{100, 100, 100}, map[int]int64{1: 40, 2: 60}, []int64{10, 15, 30}, []int{2, 2, 1}},
		{"freed twice", []int64{10, 20, 30}, map[int]int64{0: 10, 2: 24}, []int64{5, 5, 1}, []int{0, 0, 2}},
		{"least loaded after release", []int64{300, 200, 100}, map[int]int64{0: 250}, []int64{60, 60}, []int{0, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := plan.NewBalancer(len(c.assign))
			laneOf := make([]int, len(c.assign))
			seen := map[int]bool{}
			for i, s := range c.assign {
				laneOf[i] = b.Assign(s)
				if seen[laneOf[i]] {
					t.Fatalf("initial item %d went to busy lane %d while another lane was idle", i, laneOf[i])
				}
				seen[laneOf[i]] = true
			}
			for item, s := range c.done {
				b.Done(laneOf[item], s)
			}
			var got, want []int
			for k, s := range c.next {
				got = append(got, b.Assign(s))
				want = append(want, laneOf[c.want[k]])
			}
			if !slices.Equal(got, want) {
				t.Errorf("lanes %v, want %v (initial lanes %v)", got, want, laneOf)
			}
		})
	}
}

func TestBalancerConcurrent(t *testing.T) {
	const lanes = 4
	b := plan.NewBalancer(lanes)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				size := int64(g*1000 + i)
				lane := b.Assign(size)
				b.Done(lane, size)
			}
		})
	}
	wg.Wait()
	// Every byte was released: all lanes are idle again, so equal items
	// spread one per lane.
	var got []int
	for range lanes {
		got = append(got, b.Assign(1))
	}
	slices.Sort(got)
	if want := []int{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("after concurrent Assign/Done, equal items went to lanes %v, want %v", got, want)
	}
}
