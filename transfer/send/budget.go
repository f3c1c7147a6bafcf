package send

import (
	"errors"
	"sync"

	"github.com/xfer-io/xfer/transfer/wire"
)

// errMaxTransfer stops the plan once the --max-transfer budget refused a
// file: what was started finishes (or is cut, in hard mode) and the run
// ends with exitcode.MaxTransfer.
var errMaxTransfer = errors.New("max transfer limit reached")

// budget is --max-transfer: the bytes of the files the run started,
// against the limit, in the way --cutoff-mode says. admit is called by
// the planner alone; cutAt by the senders.
type budget struct {
	limit int64 // 0: none
	mode  wire.CutoffMode
	used  int64 // bytes of the files admitted
	hit   bool  // a file was refused or cut: the limit was reached

	mu   sync.Mutex
	cuts map[string]int64 // hard mode: source path -> bytes of it that may be sent
}

func newBudget(opt wire.Options) *budget {
	mode := opt.CutoffMode
	if mode == "" {
		mode = wire.CutoffHard
	}
	return &budget{limit: opt.MaxTransfer, mode: mode, cuts: map[string]int64{}}
}

// admit decides whether the file at path of size bytes may start (whole:
// it travels whole in a batch and cannot be cut). In hard mode the file
// in which the limit falls starts, and cutAt says where it is cut. A file
// that may not start stops the plan.
func (b *budget) admit(path string, size int64, whole bool) (ok bool) {
	if b.limit <= 0 {
		return true
	}
	before := b.used
	switch {
	case b.hit, b.mode == wire.CutoffCautious && before+size > b.limit, before >= b.limit:
		b.hit = true
		return false
	}
	b.used += size
	if b.mode == wire.CutoffHard && b.used > b.limit {
		// The limit falls inside this file: it is sent up to there. A
		// file that travels whole in a batch cannot be cut; it is not
		// started.
		b.hit = true
		if whole {
			return false
		}
		b.mu.Lock()
		b.cuts[path] = b.limit - before
		b.mu.Unlock()
	}
	return true
}

// cutAt returns how many bytes of the file at path may be sent, and
// whether it is cut at all.
func (b *budget) cutAt(path string) (int64, bool) {
	if b.limit <= 0 {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.cuts[path]
	return n, ok
}
