package receive

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// testJournal is a journal of a 5-chunk file: header, then records.
func testJournal(digests bool, idx ...uint64) []byte {
	hdr := journalHeader{V: journalVersion, Name: "f.bin", Part: ".xfer-0123456789abcdef.part", Size: 5 << 16,
		MtimeNs: 1_600_000_000_000_000_000, Chunk: 1 << 16, Mode: 0o644, Digests: digests}
	b := hdr.encode()
	for _, i := range idx {
		b = appendRecord(b, i, hashtree.Sum([]byte{byte(i)}), digests)
	}
	return b
}

// FuzzJournal feeds arbitrary bytes to the journal decoder, which reads
// files that a previous run (or anyone who can write into the tree) left:
// nothing may panic, records stay within the file's chunks, each index
// comes once, the length to keep stays within what was read, and what it
// decodes encodes back to a journal that decodes the same.
func FuzzJournal(f *testing.F) {
	f.Add(testJournal(false))
	f.Add(testJournal(false, 0, 1, 4, 1))
	f.Add(testJournal(true, 2, 3, parkMark))
	f.Add(append(testJournal(true, 2, parkMark), 1, 2, 3)) // torn after the mark
	f.Add(append(testJournal(false, 0), 9, 9))             // torn record
	f.Add(testJournal(false, 7, 1<<40))                    // out of range
	f.Add([]byte(`{"v":1,"size":10,"mtime":1,"chunk":65536,"mode":420}` + "\n"))
	f.Add([]byte(`{"v":2,"name":"../x","part":".xfer-0123456789abcdef.part","size":1,"chunk":65536}` + "\n"))
	f.Add([]byte(`{"v":2,"name":"x","part":"../../etc/passwd","size":1,"chunk":65536}` + "\n"))
	f.Add([]byte(`{"v":2,"name":"x","part":".xfer-0123456789abcdef.part","size":-1,"chunk":3}` + "\n"))
	f.Add([]byte("\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr, recs, keep, parked, err := decodeJournal(bytes.NewReader(b))
		if err != nil {
			return
		}
		if keep < 0 || keep > int64(len(b)) {
			t.Fatalf("keep %d of %d bytes", keep, len(b))
		}
		if !plan.IsTempName(hdr.Part, ".part") || !validName(hdr.Name) {
			t.Fatalf("header names %q, %q", hdr.Name, hdr.Part)
		}
		n := hashtree.NumChunks(hdr.Size, hdr.Chunk)
		seen := map[int64]bool{}
		out := hdr.encode()
		for _, r := range recs {
			if r.idx < 0 || r.idx >= n || seen[r.idx] {
				t.Fatalf("record %d of %d chunks (seen %v)", r.idx, n, seen[r.idx])
			}
			seen[r.idx] = true
			out = appendRecord(out, uint64(r.idx), r.dg, hdr.Digests)
		}
		if parked {
			out = appendRecord(out, parkMark, hashtree.Digest{}, hdr.Digests)
		}
		hdr2, recs2, _, parked2, err := decodeJournal(bytes.NewReader(out))
		if err != nil || hdr2 != hdr || len(recs2) != len(recs) || parked2 != parked {
			t.Fatalf("re-encoded journal decodes to %+v %d records parked %v (%v), want %+v %d %v",
				hdr2, len(recs2), parked2, err, hdr, len(recs), parked)
		}
		for i := range recs {
			if recs2[i] != recs[i] {
				t.Fatalf("record %d: %+v, want %+v", i, recs2[i], recs[i])
			}
		}
	})
}

// TestDecodeJournal: what a journal says, and where appending resumes.
func TestDecodeJournal(t *testing.T) {
	hdrLen, shareLen := int64(len(testJournal(false))), int64(len(testJournal(true)))
	cases := []struct {
		name   string
		b      []byte
		idx    []int64
		keep   int64
		parked bool
	}{
		{"header only", testJournal(false), nil, hdrLen, false},
		{"records, one twice", testJournal(false, 0, 3, 0), []int64{0, 3}, hdrLen + 24, false},
		{"torn tail dropped", append(testJournal(false, 1), 1, 2, 3), []int64{1}, hdrLen + 8, false},
		{"out of range skipped", testJournal(false, 5, 2), []int64{2}, hdrLen + 16, false},
		{"parked share", testJournal(true, 4, parkMark), []int64{4}, shareLen + 40, true},
		{"mark not last", testJournal(true, 4, parkMark, 1), []int64{4, 1}, shareLen + 120, false},
	}
	for _, c := range cases {
		_, recs, keep, parked, err := decodeJournal(bytes.NewReader(c.b))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var idx []int64
		for _, r := range recs {
			idx = append(idx, r.idx)
		}
		if len(idx) != len(c.idx) || !slices.Equal(idx, c.idx) || keep != c.keep || parked != c.parked {
			t.Errorf("%s: records %v keep %d parked %v; want %v %d %v", c.name, idx, keep, parked, c.idx, c.keep, c.parked)
		}
	}
	for _, bad := range []string{
		`{"v":1,"size":10,"mtime":1,"chunk":65536,"mode":420}`,
		`{"v":2,"name":"x","part":"x.part","size":10,"chunk":65536}`,
		`{"v":2,"name":"a/b","part":".xfer-0123456789abcdef.part","size":10,"chunk":65536}`,
		`{"v":2,"name":"x","part":".xfer-0123456789abcdef.part","size":10,"chunk":1000}`,
		`not json`,
	} {
		if _, _, _, _, err := decodeJournal(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestOpenLocked: a journal name with something planted at it (a hard
// link to a file elsewhere, a symlink) is cleared, never written
// through; a journal in use is refused; a partial file name is fresh and
// exclusive every time.
func TestOpenLocked(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.WriteFile(outside, []byte("outside"), 0o640); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	r := newReceiver(root, Options{NoFsync: true}, false, false, "")
	name := journalName("f")
	for _, plant := range []func(string) error{
		func(p string) error { return os.Link(outside, p) },
		func(p string) error { return os.Symlink(outside, p) },
	} {
		if err := plant(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		j, err := r.openLocked(name, syscall.LOCK_EX)
		if err != nil {
			t.Fatal(err)
		}
		j.Write([]byte("journal"))
		if _, err := r.openLocked(name, syscall.LOCK_EX); err != errBusy {
			t.Errorf("a second lock: %v, want errBusy", err)
		}
		j.Close()
		os.Remove(filepath.Join(dir, name))
		if b, _ := os.ReadFile(outside); string(b) != "outside" {
			t.Fatalf("written through a planted name: %q", b)
		}
	}
	j, err := r.openLocked(name, syscall.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	seen := map[string]bool{}
	for range 4 {
		f, p, err := r.createPart("f", j, journalHeader{V: journalVersion, Name: "f", Chunk: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen[p] || !plan.IsTempName(p, ".part") {
			t.Errorf("partial name %q (seen %v)", p, seen[p])
		}
		seen[p] = true
	}
}

// TestKilledAtCreate: a run killed the moment it made a partial file
// (before writing a byte or a record) leaves a journal that already
// names it, and the next transfer of the file removes it: no partial
// file is left behind that no journal names.
func TestKilledAtCreate(t *testing.T) {
	dir := t.TempDir()
	root, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	sp := wire.FileSpec{Path: "f", Size: 3 << 20, Mode: 0o644, MtimeNs: 1e18, ChunkSize: 1 << 20}
	hdr := journalHeader{V: journalVersion, Name: "f", Size: sp.Size, MtimeNs: sp.MtimeNs, Chunk: sp.ChunkSize, Mode: sp.Mode}

	killed := newReceiver(root, Options{NoFsync: true}, false, false, "")
	j, err := killed.openLocked(journalName("f"), syscall.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	f, part, err := killed.createPart("f", j, hdr)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // SIGKILL: the files stay as they are
	j.Close()
	b, err := os.ReadFile(filepath.Join(dir, journalName("f")))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _, _, err := decodeJournal(bytes.NewReader(b)); err != nil || got.Part != plan.Base(part) {
		t.Fatalf("the journal of a partial file just made names %q (%v), want %q", got.Part, err, part)
	}

	rerun := newReceiver(root, Options{NoFsync: true}, false, false, "")
	rf, msg := rerun.create(sp)
	if msg != "" {
		t.Fatal(msg)
	}
	if rf.part == part {
		t.Errorf("the rerun resumed the empty partial file %s", part)
	}
	rerun.discard(rf)
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left behind: %s", e.Name())
	}
}
