package packmap

import "sync"

// Cache is a map of at most max entries, safe for concurrent use. When it
// is full, MakeRoom drops an eighth of the entries (arbitrary ones) before
// the next is added. A Cache of max 0 or less remembers nothing.
type Cache[K comparable, V any] struct {
	mu  sync.RWMutex
	m   map[K]V
	max int
}

// NewCache returns an empty Cache of at most max entries.
func NewCache[K comparable, V any](max int) *Cache[K, V] {
	return &Cache[K, V]{m: map[K]V{}, max: max}
}

// Get returns the value kept under k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[k]
	return v, ok
}

// Put keeps v under k.
func (c *Cache[K, V]) Put(k K, v V) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	MakeRoom(c.m, c.max)
	c.m[k] = v
}

// Clear forgets every entry.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// MakeRoom makes room for one more entry in m, which holds at most limit:
// when it is full, an eighth of its entries (at least one) are dropped.
func MakeRoom[K comparable, V any](m map[K]V, limit int) {
	if len(m) < limit {
		return
	}
	drop := max(1, limit/8)
	for k := range m {
		delete(m, k)
		if drop--; drop == 0 {
			break
		}
	}
}
