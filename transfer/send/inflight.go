package send

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/xfer-io/xfer/internal/progress"
)

// inflight is the set of files (and batches of small files) on their way
// to the destination, which progress events list so that a user sees
// what is moving. Entries are keyed by the order they started in.
type inflight struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*flight
}

// flight is one entry: Done grows as its chunks are verified.
type flight struct {
	path  string
	size  int64
	files int
	done  atomic.Int64
}

// add registers an entry and returns its key for remove.
func (s *inflight) add(path string, size int64, files int) (uint64, *flight) {
	f := &flight{path: path, size: size, files: files}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]*flight{}
	}
	s.next++
	s.m[s.next] = f
	return s.next, f
}

func (s *inflight) remove(k uint64) {
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// snapshot lists up to n entries, those that started first first.
func (s *inflight) snapshot(n int) []progress.InFlight {
	s.mu.Lock()
	keys := make([]uint64, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	if len(keys) > n {
		keys = keys[:n]
	}
	out := make([]progress.InFlight, 0, len(keys))
	for _, k := range keys {
		f := s.m[k]
		out = append(out, progress.InFlight{Path: f.path, Size: f.size, Done: f.done.Load(), Files: f.files})
	}
	s.mu.Unlock()
	return out
}
