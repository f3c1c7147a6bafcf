package receive

import (
	"strings"
	"testing"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/memtest"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// FuzzDataMessage: chunk and batch messages on a data stream, decoded by
// a receiver with a real root.
func FuzzDataMessage(f *testing.F) {
	sf := wire.SmallFile{Path: "d/f", Mode: 0o644, MtimeNs: 1, Data: []byte("hi")}
	e := wire.Enc{}
	e.U8(0)
	wire.AppendSmall(&e, &sf)
	f.Add(e.Buf, 1)
	f.Add([]byte{1, 2, 3}, 3)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		root, _ := fsroottest.Temp(t)
		r := newReceiver(root, Options{NoFsync: true}, false, false, "")
		r.WriteBatch(payload, count, wire.BatchWhole)
		d := &wire.Dec{Buf: payload}
		wire.ReadSmall(d)
	})
}

// FuzzCleanPath: the path checks every name from a peer goes through.
// A path they accept is canonical, relative and stays beneath the root,
// and so is what remains after the export name is taken off.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "/abs", "a/./b", "a/..", "\xff\xfe", "exp/\xff", "exp", "a\x00b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		ok := func(p string) {
			t.Helper()
			if strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
				t.Fatalf("accepted %q", p)
			}
			for _, c := range strings.Split(p, "/") {
				if p != "" && (c == "" || c == "." || c == "..") {
					t.Fatalf("accepted %q with component %q", p, c)
				}
			}
			if c, err := fsroot.Clean(p); err != nil || c != p {
				t.Fatalf("accepted %q, which cleans to %q (%v)", p, c, err)
			}
		}
		if wire.ValidRel(p) == nil {
			ok(p)
		}
		if rest, err := stripExport("exp", p); err == nil {
			ok(rest)
			if p != "exp" && !strings.HasPrefix(p, "exp/") {
				t.Fatalf("%q is outside export exp, yet gave %q", p, rest)
			}
		}
	})
}

// FuzzBatchDecode: a small-file batch as a read-only receiver decodes it
// (every file is refused, so nothing touches a disk). Whatever the count
// claims, what the decoder allocates stays proportional to the payload.
func FuzzBatchDecode(f *testing.F) {
	sf := wire.SmallFile{Path: "d/\xff", Mode: 0o644, MtimeNs: 1, Data: []byte("hi")}
	e := wire.Enc{}
	e.U8(1)
	wire.AppendSmall(&e, &sf)
	wire.AppendSmall(&e, &sf)
	f.Add(e.Buf, 2)
	f.Add(e.Buf, 1<<30)
	f.Add(make([]byte, 4096), 4095)
	f.Add([]byte{0}, 1)
	r := newReceiver(nil, Options{NoFsync: true}, true, false, "")
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		var errs []string
		var err error
		n := memtest.Allocated(func() { errs, err = r.WriteBatch(payload, count, wire.BatchPerFile) })
		if bound := uint64(16<<10 + 12*len(payload)); n > bound {
			t.Fatalf("decoding %d bytes claiming %d files allocated %d bytes (bound %d)", len(payload), count, n, bound)
		}
		if err == nil && len(errs) != count {
			t.Fatalf("%d verdicts for %d files", len(errs), count)
		}
	})
}
