package send

import (
	"testing"

	"github.com/xfer-io/xfer/transfer/wire"
)

// TestBudget: which of a run's files --max-transfer lets start, and where
// hard mode cuts, for each --cutoff-mode (rclone's meanings).
func TestBudget(t *testing.T) {
	const M = 1 << 20
	sizes := []int64{2 * M, 2 * M, 2 * M, 2 * M}
	for _, tc := range []struct {
		mode     wire.CutoffMode
		limit    int64
		whole    bool  // the files travel whole in batches (cannot be cut)
		started  int   // files admitted before the plan stops
		cutAt    int64 // hard: bytes of the last admitted file that may go (-1: not cut)
		complete bool  // every file admitted, limit never reached
	}{
		{mode: wire.CutoffHard, limit: 5 * M, started: 3, cutAt: M},
		{mode: wire.CutoffHard, limit: 4 * M, started: 2, cutAt: -1},
		{mode: wire.CutoffHard, limit: 5 * M, whole: true, started: 2, cutAt: -1},
		{mode: wire.CutoffSoft, limit: 5 * M, started: 3, cutAt: -1},
		{mode: wire.CutoffSoft, limit: 4 * M, started: 2, cutAt: -1},
		{mode: wire.CutoffCautious, limit: 5 * M, started: 2, cutAt: -1},
		{mode: "", limit: 7 * M, started: 4, cutAt: M},
		{mode: wire.CutoffCautious, limit: 0, started: 4, cutAt: -1, complete: true},
		{mode: wire.CutoffSoft, limit: 100 * M, started: 4, cutAt: -1, complete: true},
	} {
		b := newBudget(wire.Options{MaxTransfer: tc.limit, CutoffMode: tc.mode})
		var started []string
		for i, n := range sizes {
			p := string(rune('a' + i))
			if !b.admit(p, n, tc.whole) {
				break
			}
			started = append(started, p)
		}
		if len(started) != tc.started || b.hit == tc.complete {
			t.Errorf("%q limit %d: started %q (hit %v), want %d files (hit %v)", tc.mode, tc.limit, started, b.hit, tc.started, !tc.complete)
			continue
		}
		cut, ok := b.cutAt(started[len(started)-1])
		if got := map[bool]int64{true: cut, false: -1}[ok]; got != tc.cutAt {
			t.Errorf("%q limit %d: last file cut at %d, want %d", tc.mode, tc.limit, got, tc.cutAt)
		}
		for _, p := range started[:len(started)-1] {
			if _, ok := b.cutAt(p); ok {
				t.Errorf("%q limit %d: %s cut, want only the last", tc.mode, tc.limit, p)
			}
		}
	}
}
