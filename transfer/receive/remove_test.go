package receive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/transfer/wire"
)

// TestMetaRemove: the remove operation takes one file, symlink or empty
// directory, never more; with unchanged it keeps a file that is no longer
// the version described; a served root and a read-only receiver refuse.
func TestMetaRemove(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123, time.UTC)
	for _, c := range []struct {
		name     string
		op       wire.MetaOp
		readOnly bool
		want     string // in the verdict; "" for done
		gone     bool   // the path is gone afterwards
	}{
		{"file", wire.MetaOp{Op: "remove", Path: "f"}, false, "", true},
		{"unchanged file", wire.MetaOp{Op: "remove", Path: "f", Unchanged: &wire.Unchanged{Size: 5, MtimeNs: mtime.UnixNano()}}, false, "", true},
		{"grown file", wire.MetaOp{Op: "remove", Path: "f", Unchanged: &wire.Unchanged{Size: 4, MtimeNs: mtime.UnixNano()}}, false, "kept: it changed after it was copied", false},
		{"touched file", wire.MetaOp{Op: "remove", Path: "f", Unchanged: &wire.Unchanged{Size: 5, MtimeNs: mtime.UnixNano() + 1}}, false, "kept: it changed after it was copied", false},
		{"symlink", wire.MetaOp{Op: "remove", Path: "l"}, false, "", true},
		{"empty directory", wire.MetaOp{Op: "remove", Path: "empty"}, false, "", true},
		{"full directory", wire.MetaOp{Op: "remove", Path: "d"}, false, "not empty", false},
		{"missing", wire.MetaOp{Op: "remove", Path: "nothing"}, false, "", true},
		{"root", wire.MetaOp{Op: "remove", Path: ""}, false, "refused: it is the root this side serves", false},
		{"root, delete", wire.MetaOp{Op: "delete", Path: ""}, false, "refused: it is the root this side serves", false},
		{"read-only", wire.MetaOp{Op: "remove", Path: "f"}, true, "read-only", false},
		{"escape", wire.MetaOp{Op: "remove", Path: "../f"}, false, "escapes", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, dir := fsroottest.Temp(t)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o644))
			must(os.Chtimes(filepath.Join(dir, "f"), mtime, mtime))
			must(os.Symlink("f", filepath.Join(dir, "l")))
			must(os.Mkdir(filepath.Join(dir, "empty"), 0o755))
			must(os.MkdirAll(filepath.Join(dir, "d", "e"), 0o755))
			h := NewHandler(root, Options{NoFsync: true, ReadOnly: c.readOnly})
			defer h.Close()
			errs := h.Receiver().Meta([]wire.MetaOp{c.op})
			if len(errs) != 1 || (c.want == "") != (errs[0] == "") || !strings.Contains(errs[0], c.want) {
				t.Fatalf("verdict %q, want one containing %q", errs, c.want)
			}
			if c.op.Path == "" || strings.HasPrefix(c.op.Path, "..") {
				return
			}
			_, err := os.Lstat(filepath.Join(dir, c.op.Path))
			if gone := os.IsNotExist(err); gone != c.gone {
				t.Errorf("%s gone: %v, want %v", c.op.Path, gone, c.gone)
			}
		})
	}
}
