// Package idmap maps between the numeric owners and groups of files and
// their names in this machine's user and group databases, looking each one
// up once: a sender names the owners it sends, and a receiver maps the names
// back to its own ids, as rsync does unless told --numeric-ids.
package idmap

import (
	"os/user"
	"strconv"
	"sync"
)

// Map answers from the user and group databases, remembering every answer
// (a lookup can be slow: it may ask a directory service). The zero value is
// ready; a Map is safe for concurrent use.
type Map struct {
	mu         sync.Mutex
	userNames  map[uint32]string // "" for an id without a name
	groupNames map[uint32]string
	uids       map[string]int64 // -1 for an unknown name
	gids       map[string]int64
}

// UserName is the name of user uid, "" if it has none.
func (m *Map) UserName(uid uint32) string {
	return cached(m, &m.userNames, uid, func(uid uint32) string {
		if u, err := user.LookupId(decimal(uid)); err == nil {
			return u.Username
		}
		return ""
	})
}

// GroupName is the name of group gid, "" if it has none.
func (m *Map) GroupName(gid uint32) string {
	return cached(m, &m.groupNames, gid, func(gid uint32) string {
		if g, err := user.LookupGroupId(decimal(gid)); err == nil {
			return g.Name
		}
		return ""
	})
}

// Uid is the id of the user called name; false if there is none.
func (m *Map) Uid(name string) (uint32, bool) {
	return found(cached(m, &m.uids, name, func(name string) int64 {
		if u, err := user.Lookup(name); err == nil {
			return parseID(u.Uid)
		}
		return -1
	}))
}

// Gid is the id of the group called name; false if there is none.
func (m *Map) Gid(name string) (uint32, bool) {
	return found(cached(m, &m.gids, name, func(name string) int64 {
		if g, err := user.LookupGroup(name); err == nil {
			return parseID(g.Gid)
		}
		return -1
	}))
}

func decimal(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// found is id as an id, and whether there is one (id is not -1).
func found(id int64) (uint32, bool) {
	if id < 0 {
		return 0, false
	}
	return uint32(id), true
}

// parseID is a database's decimal id, -1 if it is not one.
func parseID(s string) int64 {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return -1
	}
	return int64(n)
}

// cached is find(k), looked up once and kept in *cache. The lock is not
// held during find, so one slow lookup does not hold up the others (two
// callers may then look up the same key; both get the same answer).
func cached[K comparable, V any](m *Map, cache *map[K]V, k K, find func(K) V) V {
	m.mu.Lock()
	v, ok := (*cache)[k]
	m.mu.Unlock()
	if ok {
		return v
	}
	v = find(k)
	m.mu.Lock()
	if *cache == nil {
		*cache = map[K]V{}
	}
	(*cache)[k] = v
	m.mu.Unlock()
	return v
}
