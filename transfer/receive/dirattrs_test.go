package receive

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/transfer/wire"
)

// TestDirAttrsSpill: whatever the number of records and where the spill
// threshold falls, every record comes back once, with its fields intact
// (a non-UTF-8 path and owner names included), deepest first, and no more
// than the threshold is ever held in memory.
func TestDirAttrsSpill(t *testing.T) {
	for _, c := range []struct {
		name         string
		n, spillAt   int
		wantSpillRun bool
	}{
		{"none", 0, 4, false},
		{"below the threshold", 3, 4, false},
		{"exactly one run", 4, 4, true},
		{"runs and a rest in memory", 23, 4, true},
		{"many runs of one", 9, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.n)))
			l := dirAttrs{spillAt: c.spillAt}
			want := map[string]dirAttr{}
			for i := range c.n {
				parts := make([]string, 1+rng.IntN(6))
				for j := range parts {
					parts[j] = fmt.Sprintf("d%d", rng.IntN(3))
				}
				parts[0] = fmt.Sprintf("r%d\xff", i) // unique, not UTF-8
				d := dirAttr{path: strings.Join(parts, "/"), mode: uint32(0o700 + i), mtimeNs: int64(i)*1e9 - 5}
				if i%3 == 0 {
					d.owner = &wire.Owner{Uid: uint32(i), Gid: 7, User: "u\x00ser", Group: fmt.Sprint("g", i), Numeric: i%2 == 0}
				}
				want[d.path] = d
				l.add(d)
				if len(l.mem) >= c.spillAt {
					t.Fatalf("%d records in memory after %d added, threshold %d", len(l.mem), i+1, c.spillAt)
				}
			}
			if got := len(l.runs) > 0; got != c.wantSpillRun {
				t.Errorf("spilled: %v, want %v", got, c.wantSpillRun)
			}
			last := 1 << 30
			seen := 0
			err := l.drain(func(d dirAttr) {
				seen++
				if dd := depth(d.path); dd > last {
					t.Errorf("%q (depth %d) after a record of depth %d", d.path, dd, last)
				} else {
					last = dd
				}
				w, ok := want[d.path]
				if !ok {
					t.Errorf("unexpected or repeated record %q", d.path)
					return
				}
				delete(want, d.path)
				if d.mode != w.mode || d.mtimeNs != w.mtimeNs || (d.owner == nil) != (w.owner == nil) ||
					(d.owner != nil && *d.owner != *w.owner) {
					t.Errorf("%q came back as %+v %+v, want %+v %+v", d.path, d, d.owner, w, w.owner)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != c.n || len(want) != 0 {
				t.Errorf("%d records back of %d; missing %d", seen, c.n, len(want))
			}
			if l.f != nil || len(l.mem) != 0 || l.n != 0 {
				t.Error("drain left records or the spill file behind")
			}
		})
	}
}

// TestFinishSpilledDirs: a receiver whose directory records spill applies
// every directory's mode and mtime at finish, a directory without search
// permission after the ones beneath it (applied the other way round, a
// non-root receiver could not reach them).
func TestFinishSpilledDirs(t *testing.T) {
	root, top := fsroottest.Temp(t)
	r := newReceiver(root, Options{NoFsync: true}, false, false, "")
	r.dirs.spillAt = 2
	var ops []wire.MetaOp
	for i := range 5 {
		for _, p := range []string{fmt.Sprintf("a%d", i), fmt.Sprintf("a%d/b", i), fmt.Sprintf("a%d/b/c", i)} {
			if err := os.MkdirAll(filepath.Join(top, p), 0o755); err != nil {
				t.Fatal(err)
			}
			mode := uint32(0o750)
			if !strings.Contains(p, "/") {
				mode = 0o600 // no search permission: its subdirectories first
			}
			ops = append(ops, wire.MetaOp{Op: "setattrs", Path: p, Mode: mode, MtimeNs: int64(1_600_000_000+i) * 1e9})
		}
	}
	for i, e := range r.Meta(ops) {
		if e != "" {
			t.Fatalf("%s: %s", ops[i].Path, e)
		}
	}
	if len(r.dirs.runs) == 0 {
		t.Fatal("the records did not spill")
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, op := range ops {
			if !strings.Contains(op.Path, "/") {
				os.Chmod(filepath.Join(top, op.Path), 0o755)
			}
		}
	})
	check := func(op wire.MetaOp) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(top, op.Path))
		if err != nil {
			t.Fatal(err)
		}
		if uint32(fi.Mode().Perm()) != op.Mode || fi.ModTime().UnixNano() != op.MtimeNs {
			t.Errorf("%s: mode %o mtime %d, want %o %d", op.Path, fi.Mode().Perm(), fi.ModTime().UnixNano(), op.Mode, op.MtimeNs)
		}
	}
	for _, op := range ops {
		if !strings.Contains(op.Path, "/") {
			check(op)
			if err := os.Chmod(filepath.Join(top, op.Path), 0o700); err != nil { // to look beneath it
				t.Fatal(err)
			}
		}
	}
	for _, op := range ops {
		if strings.Contains(op.Path, "/") {
			check(op)
		}
	}
}
