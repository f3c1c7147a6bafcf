package protoprobe

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/session"
)

// TTL is how long a probe's result stands for a peer.
const TTL = 24 * time.Hour

// Entry is one peer's cached probe result.
type Entry struct {
	Proto      string               `json:"proto"`
	Rates      []progress.ProtoRate `json:"rates"`
	MeasuredAt string               `json:"measured_at"` // RFC 3339
}

// Cache keeps probe results per peer in one JSON file. Processes that
// update it at once may lose each other's entries (the file is replaced
// whole, never torn); the next run then measures again.
type Cache struct {
	path string
	now  func() time.Time
}

// NewCache returns the cache kept in file path.
func NewCache(path string) *Cache { return &Cache{path: path, now: time.Now} }

// DefaultCache is the cache under the user's cache directory
// ($XDG_CACHE_HOME/xfer/proto-probe.json, by default
// ~/.cache/xfer/proto-probe.json), or nil when there is none.
func DefaultCache() *Cache {
	dir, err := os.UserCacheDir()
	if err != nil {
		return nil
	}
	return NewCache(filepath.Join(dir, "xfer", "proto-probe.json"))
}

type cacheFile struct {
	Version int              `json:"version"`
	Entries map[string]Entry `json:"entries"`
}

// cacheKey names what a probe's result depends on: the peer, the streams,
// TLS, and the UCX settings that decide how rdma runs.
func cacheKey(addr string, o session.DialOptions) string {
	return fmt.Sprintf("%s streams=%d tls=%t/%t ucx_tls=%s ucx_net_devices=%s",
		addr, o.Streams, o.TLS != nil, o.TLSData, os.Getenv("UCX_TLS"), os.Getenv("UCX_NET_DEVICES"))
}

func (c *Cache) load() cacheFile {
	f := cacheFile{Version: 1, Entries: map[string]Entry{}}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return f
	}
	var got cacheFile
	if json.Unmarshal(b, &got) != nil || got.Version != 1 || got.Entries == nil {
		return f // unreadable: start afresh
	}
	return got
}

func (c *Cache) fresh(e Entry) bool {
	t, err := time.Parse(time.RFC3339, e.MeasuredAt)
	return err == nil && c.now().Sub(t) < TTL && e.Proto != ""
}

// Get returns the unexpired entry under key.
func (c *Cache) Get(key string) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	e, ok := c.load().Entries[key]
	return e, ok && c.fresh(e)
}

// Put stores e under key, dropping expired entries. A cache that cannot
// be written is skipped silently: it only saves a probe.
func (c *Cache) Put(key string, e Entry) {
	if c != nil {
		c.update(func(m map[string]Entry) { m[key] = e })
	}
}

// Drop removes the entry under key.
func (c *Cache) Drop(key string) {
	if c != nil {
		c.update(func(m map[string]Entry) { delete(m, key) })
	}
}

func (c *Cache) update(fn func(map[string]Entry)) {
	f := c.load()
	for k, e := range f.Entries {
		if !c.fresh(e) {
			delete(f.Entries, k)
		}
	}
	fn(f.Entries)
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".proto-probe-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), c.path) != nil {
		os.Remove(tmp.Name())
	}
}
