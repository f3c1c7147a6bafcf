package receive

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FDBudget bounds the unnamed temporary files (O_TMPFILE) that small-file
// batches hold open at once, all sessions of a server together, well
// within RLIMIT_NOFILE; beyond it a batch uses named partial files, which
// it closes as it goes.
type FDBudget struct{ left atomic.Int64 }

// NewFDBudget is a budget of a quarter of the process's RLIMIT_NOFILE, at
// most 8192 (256 where the limit cannot be read).
func NewFDBudget() *FDBudget {
	n := int64(256)
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		n = int64(min(rl.Cur/4, 8192))
	}
	b := &FDBudget{}
	b.left.Store(n)
	return b
}

// take takes one descriptor from the budget, if one is left.
func (b *FDBudget) take() bool {
	if b.left.Add(-1) >= 0 {
		return true
	}
	b.left.Add(1)
	return false
}

// put returns a descriptor taken.
func (b *FDBudget) put() { b.left.Add(1) }
