package receive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/transfer/wire"
)

// backupCase is a tree, one backup operation and the tree it leaves.
type backupCase struct {
	name   string
	before []string // files ("p=content") and directories ("p/") to make
	op     wire.MetaOp
	errHas string    // "" for success
	after  []string  // every file ("p=content") and directory ("p/") after, in lexical order
	linked [2]string // two paths that must be one file
}

func TestBackupOp(t *testing.T) {
	for _, c := range []backupCase{
		{name: "file, over an older backup",
			before: []string{"a=new-old", "bak/a.old=older"},
			op:     wire.MetaOp{Op: "backup", Path: "a", Target: "bak/a", Suffix: ".old"},
			after:  []string{"bak/", "bak/a.old=new-old"}},
		{name: "kept file is a hard link",
			before: []string{"d/f=v1"},
			op:     wire.MetaOp{Op: "backup", Path: "d/f", Target: "bak/d/f", Keep: true},
			after:  []string{"bak/", "bak/d/", "bak/d/f=v1", "d/", "d/f=v1"}, linked: [2]string{"d/f", "bak/d/f"}},
		{name: "directory entry by entry, a file in the way of one",
			before: []string{"t/x=1", "t/s/y=2", "bak/t/s=an old backup of a file"},
			op:     wire.MetaOp{Op: "backup", Path: "t", Target: "bak/t", Suffix: "~"},
			after:  []string{"bak/", "bak/t/", "bak/t/s/", "bak/t/s/y~=2", "bak/t/x~=1"}},
		{name: "target inside the entry", before: []string{"d/f=1"},
			op: wire.MetaOp{Op: "backup", Path: "d", Target: "d/bak/d"}, errHas: "would lie inside it", after: []string{"d/", "d/f=1"}},
		{name: "nothing there", op: wire.MetaOp{Op: "backup", Path: "none", Target: "bak/none"}},
		{name: "target outside the tree", before: []string{"a=1"},
			op: wire.MetaOp{Op: "backup", Path: "a", Target: "../a"}, errHas: "back up a", after: []string{"a=1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, _ := fsroottest.Temp(t)
			top := root.Path()
			for _, e := range c.before {
				p, content, file := strings.Cut(e, "=")
				if err := os.MkdirAll(filepath.Join(top, filepath.Dir(strings.TrimSuffix(p, "/"))), 0o755); err != nil {
					t.Fatal(err)
				}
				if file {
					if err := os.WriteFile(filepath.Join(top, p), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				} else if err := os.MkdirAll(filepath.Join(top, p), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			r := newReceiver(root, Options{}, false, false, "")
			errs := r.Meta([]wire.MetaOp{c.op})
			if c.errHas == "" && errs[0] != "" || c.errHas != "" && !strings.Contains(errs[0], c.errHas) {
				t.Fatalf("Meta: %q, want an error holding %q", errs[0], c.errHas)
			}
			var got []string
			filepath.Walk(top, func(p string, info os.FileInfo, err error) error {
				rel, _ := filepath.Rel(top, p)
				switch {
				case err != nil || rel == ".":
				case info.IsDir():
					got = append(got, rel+"/")
				default:
					b, _ := os.ReadFile(p)
					got = append(got, rel+"="+string(b))
				}
				return nil
			})
			// Walk goes in lexical order, as the cases list the trees.
			if strings.Join(got, "\n") != strings.Join(c.after, "\n") {
				t.Errorf("tree after:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.after, "\n"))
			}
			if c.linked[0] != "" {
				var a, b unix.Stat_t
				if unix.Lstat(filepath.Join(top, c.linked[0]), &a) != nil || unix.Lstat(filepath.Join(top, c.linked[1]), &b) != nil || a.Ino != b.Ino {
					t.Errorf("%s and %s are not one file", c.linked[0], c.linked[1])
				}
			}
		})
	}
}
