package idmap

import (
	"os/user"
	"strconv"
	"sync"
	"testing"
)

// TestMap checks both directions against the databases, for the user and
// group this test runs as (which every machine has) and for a name and an
// id that nothing is called.
func TestMap(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skipf("no current user: %v", err)
	}
	grp, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Skipf("no group %s: %v", me.Gid, err)
	}
	uid, _ := strconv.ParseUint(me.Uid, 10, 32)
	gid, _ := strconv.ParseUint(me.Gid, 10, 32)
	var m Map
	for round := range 2 { // the second round answers from the cache
		tests := []struct {
			name string
			got  any
			want any
		}{
			{"UserName", m.UserName(uint32(uid)), me.Username},
			{"GroupName", m.GroupName(uint32(gid)), grp.Name},
			{"UserName of an unused id", m.UserName(4000000001), ""},
			{"GroupName of an unused id", m.GroupName(4000000001), ""},
			{"Uid", pair(m.Uid(me.Username)), pair(uint32(uid), true)},
			{"Gid", pair(m.Gid(grp.Name)), pair(uint32(gid), true)},
			{"Uid of an unknown name", pair(m.Uid("no-such-user-xfer")), pair(0, false)},
			{"Gid of an unknown name", pair(m.Gid("no-such-group-xfer")), pair(0, false)},
		}
		for _, tc := range tests {
			if tc.got != tc.want {
				t.Errorf("round %d: %s = %v, want %v", round, tc.name, tc.got, tc.want)
			}
		}
	}
}

type idOK struct {
	id uint32
	ok bool
}

func pair(id uint32, ok bool) idOK { return idOK{id, ok} }

// TestConcurrent: lookups from many goroutines at once (run with -race).
func TestConcurrent(t *testing.T) {
	var m Map
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			m.UserName(uint32(i % 2))
			m.Uid("root")
		})
	}
	wg.Wait()
	if _, ok := m.Uid("root"); !ok {
		t.Error("no user root")
	}
}
