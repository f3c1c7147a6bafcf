package plan

import "sync"

// Chunk is a byte range of a file.
type Chunk struct {
	Index int64
	Off   int64
	Len   int64
}

// Chunks cuts a file of size bytes into chunkSize pieces. An empty file has
// one empty chunk, so that every file is carried by at least one message.
func Chunks(size, chunkSize int64) []Chunk {
	if size == 0 {
		return []Chunk{{}}
	}
	n := (size + chunkSize - 1) / chunkSize
	out := make([]Chunk, 0, n)
	for i := int64(0); i < n; i++ {
		off := i * chunkSize
		l := chunkSize
		if off+l > size {
			l = size - off
		}
		out = append(out, Chunk{Index: i, Off: off, Len: l})
	}
	return out
}

// Balancer assigns work to lanes so that the bytes outstanding on each lane
// stay even: the next item goes to the lane with the fewest bytes assigned
// and not yet done. It is safe for concurrent use.
type Balancer struct {
	mu   sync.Mutex
	load []int64
}

// NewBalancer balances over n lanes.
func NewBalancer(n int) *Balancer { return &Balancer{load: make([]int64, n)} }

// Assign picks the least-loaded lane for an item of size bytes and counts
// the bytes against it until Done.
func (b *Balancer) Assign(size int64) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	best := 0
	for i, l := range b.load {
		if l < b.load[best] {
			best = i
		}
	}
	b.load[best] += size
	return best
}

// Done releases size bytes from lane.
func (b *Balancer) Done(lane int, size int64) {
	b.mu.Lock()
	b.load[lane] -= size
	b.mu.Unlock()
}
