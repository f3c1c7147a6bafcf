package cas

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"lukechampine.com/blake3"
)

func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := OpenOptions(dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// putWays are the ways content can be put; each must give the same ID.
var putWays = []struct {
	name string
	put  func(ctx context.Context, t *testing.T, s *Store, b []byte) ID
}{
	{"Put", func(ctx context.Context, t *testing.T, s *Store, b []byte) ID {
		// A reader returning short reads exercises the batching.
		id, n, err := s.Put(ctx, io.MultiReader(bytes.NewReader(b[:len(b)/3]), bytes.NewReader(b[len(b)/3:])))
		if err != nil || n != int64(len(b)) {
			t.Fatalf("Put: %v, n=%d want %d", err, n, len(b))
		}
		return id
	}},
	{"PutBytes", func(ctx context.Context, t *testing.T, s *Store, b []byte) ID {
		id, err := s.PutBytes(ctx, b)
		if err != nil {
			t.Fatalf("PutBytes: %v", err)
		}
		return id
	}},
	{"PutFile", func(ctx context.Context, t *testing.T, s *Store, b []byte) ID {
		path := filepath.Join(t.TempDir(), "src")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		id, n, err := s.PutFile(ctx, path)
		if err != nil || n != int64(len(b)) {
			t.Fatalf("PutFile: %v, n=%d want %d", err, n, len(b))
		}
		return id
	}},
	{"PutVerified", func(ctx context.Context, t *testing.T, s *Store, b []byte) ID {
		id := ID(blake3.Sum256(b))
		if err := s.PutVerified(ctx, id, bytes.NewReader(b)); err != nil {
			t.Fatalf("PutVerified: %v", err)
		}
		return id
	}},
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	sizes := []int{0, 1, 4 << 10, 1 << 20, 1<<20 + 1, 8 << 20, 8<<20 + 3*GroupSize + 17}
	for _, way := range putWays {
		t.Run(way.name, func(t *testing.T) {
			s := openTest(t, t.TempDir(), Options{})
			for _, n := range sizes {
				b := randBytes(uint64(n)+7, n)
				want := ID(blake3.Sum256(b))
				id := way.put(ctx, t, s, b)
				if id != want {
					t.Fatalf("%d bytes: id %s, want blake3 %s", n, id, want)
				}
				checkObject(t, s, id, b)
			}
		})
	}
}

// checkObject checks every read path of id against b.
func checkObject(t *testing.T, s *Store, id ID, b []byte) {
	t.Helper()
	ctx := context.Background()
	n := int64(len(b))
	var out bytes.Buffer
	if got, err := s.Get(ctx, id, &out); err != nil || got != n || !bytes.Equal(out.Bytes(), b) {
		t.Fatalf("Get %s (%d bytes): n=%d err=%v equal=%v", id, n, got, err, bytes.Equal(out.Bytes(), b))
	}
	path := filepath.Join(t.TempDir(), "out")
	if err := s.GetFile(ctx, id, path); err != nil {
		t.Fatalf("GetFile: %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("GetFile content differs (err %v)", err)
	}
	if ok, err := s.Has(id); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	if sz, err := s.Size(id); sz != n || err != nil {
		t.Fatalf("Size = %d, %v; want %d", sz, err, n)
	}
	loc, err := s.Locate(id)
	if err != nil {
		t.Fatalf("Locate: %v", err)
	}
	if loc.Packed != (n <= MaxPacked) || loc.Length != n {
		t.Fatalf("Locate = %+v for %d bytes", loc, n)
	}
	f, err := os.Open(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, n)
	_, err = f.ReadAt(raw, loc.Offset)
	f.Close()
	if (err != nil && n > 0) || !bytes.Equal(raw, b) {
		t.Fatalf("bytes at %+v differ (err %v)", loc, err)
	}
	ranges := [][2]int64{{0, n}, {0, 1}, {n / 2, 4096}, {n - 1, 1}, {GroupSize - 10, 20}, {n + 5, 10}, {n - 3, 10}, {1, n + 100}}
	for _, r := range ranges {
		off, ln := r[0], r[1]
		if off < 0 {
			continue
		}
		p := make([]byte, ln)
		got, err := s.ReadAt(ctx, id, p, off)
		wantN := max(0, min(ln, n-off))
		if int64(got) != wantN || !bytes.Equal(p[:got], b[min(off, n):min(off, n)+wantN]) {
			t.Fatalf("ReadAt(off %d, len %d) of %d bytes: n=%d err=%v", off, ln, n, got, err)
		}
		if wantN < ln && err != io.EOF {
			t.Fatalf("ReadAt(off %d, len %d) of %d bytes: err %v, want io.EOF", off, ln, n, err)
		}
		if wantN == ln && err != nil {
			t.Fatalf("ReadAt(off %d, len %d): %v", off, ln, err)
		}
	}
}

func TestB3sumCompatible(t *testing.T) {
	b3, err := exec.LookPath("b3sum")
	if err != nil {
		t.Skip("b3sum not installed")
	}
	s := openTest(t, t.TempDir(), Options{})
	dir := t.TempDir()
	for _, n := range []int{0, 5, 1 << 20, 3<<20 + 1} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, randBytes(uint64(n), n), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(b3, "--no-names", path).Output()
		if err != nil {
			t.Fatalf("b3sum: %v", err)
		}
		id, _, err := s.PutFile(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := id.String(), strings.TrimSpace(string(out)); got != want {
			t.Errorf("%d bytes: id %s, b3sum %s", n, got, want)
		}
	}
}

// TestPutFileAcrossFilesystems puts from tmpfs into a store on another file
// system, where copy_file_range refuses (EXDEV) and PutFile streams instead.
func TestPutFileAcrossFilesystems(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("no /dev/shm")
	}
	srcDir, err := os.MkdirTemp("/dev/shm", "xfer-cas-test-")
	if err != nil {
		t.Skip(err)
	}
	defer os.RemoveAll(srcDir)
	s := openTest(t, t.TempDir(), Options{})
	for _, n := range []int{MaxPacked + 1, 5<<20 + 3} {
		b := randBytes(uint64(n), n)
		path := filepath.Join(srcDir, "src")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		id, size, err := s.PutFile(context.Background(), path)
		if err != nil || size != int64(n) || id != Sum(b) {
			t.Fatalf("PutFile of %d bytes: %s, %d, %v", n, id, size, err)
		}
		checkObject(t, s, id, b)
	}
}

func TestDedup(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{4 << 10, MaxPacked, 3 << 20} {
		s := openTest(t, t.TempDir(), Options{})
		b := randBytes(uint64(n), n)
		id1, err := s.PutBytes(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := s.Stat()
		for i := 1; i <= 2; i++ {
			id2, _, err := s.Put(ctx, bytes.NewReader(b))
			if err != nil || id2 != id1 {
				t.Fatalf("second put: %s, %v", id2, err)
			}
			st, err := s.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if st.Objects != 1 || st.Bytes != int64(n) || st.DedupSaved != int64(i*n) || st.PackFileBytes != before.PackFileBytes {
				t.Fatalf("%d bytes, after %d re-puts: %+v (before %+v)", n, i, st, before)
			}
		}
		// DedupSaved is persistent.
		s.Close()
		s = openTest(t, s.Dir(), Options{})
		if st, _ := s.Stat(); st.DedupSaved != int64(2*n) {
			t.Fatalf("DedupSaved after reopen = %d, want %d", st.DedupSaved, 2*n)
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		size int
		flip int64 // offset within the object
	}{
		{"packed-4K", 4 << 10, 100},
		{"packed-1M", MaxPacked, MaxPacked - 1},
		{"large-first-group", 3<<20 + 5, 7},
		{"large-last-group", 3<<20 + 5, 3<<20 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir(), Options{})
			b := randBytes(uint64(tt.size), tt.size)
			other := randBytes(99, 5000)
			id, err := s.PutBytes(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			otherID, _ := s.PutBytes(ctx, other)
			loc, _ := s.Locate(id)
			flipByte(t, loc.Path, loc.Offset+tt.flip)

			var out bytes.Buffer
			if _, err := s.Get(ctx, id, &out); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get: %v, want ErrCorrupt", err)
			}
			if loc.Packed && out.Len() != 0 {
				t.Errorf("Get wrote %d bytes of a corrupt packed object", out.Len())
			}
			outPath := filepath.Join(t.TempDir(), "out")
			if err := s.GetFile(ctx, id, outPath); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetFile: %v, want ErrCorrupt", err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(outPath)); len(ents) != 0 {
				t.Errorf("GetFile left %v", ents[0].Name())
			}
			p := make([]byte, 10)
			if _, err := s.ReadAt(ctx, id, p, tt.flip-tt.flip%GroupSize); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadAt of the damaged group: %v, want ErrCorrupt", err)
			}
			if !loc.Packed {
				// Groups other than the damaged one are still readable.
				far := int64(GroupSize * 20)
				if tt.flip >= GroupSize {
					far = 0
				}
				if n, err := s.ReadAt(ctx, id, p, far); err != nil || !bytes.Equal(p[:n], b[far:far+10]) {
					t.Fatalf("ReadAt of an intact group: %v", err)
				}
			}

			var reported []ID
			checked, corrupt, err := s.Verify(ctx, func(rid ID, err error) {
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("Verify reported %s: %v", rid, err)
					}
					reported = append(reported, rid)
				}
			})
			if err != nil || checked != 2 || corrupt != 1 || len(reported) != 1 || reported[0] != id {
				t.Fatalf("Verify = %d checked, %d corrupt, %v; reported %v", checked, corrupt, err, reported)
			}
			if q, _ := os.ReadDir(filepath.Join(s.Dir(), "quarantine")); len(q) != 1 || !strings.HasPrefix(q[0].Name(), id.String()) {
				t.Fatalf("quarantine holds %v", q)
			}
			if ok, _ := s.Has(id); ok {
				t.Fatal("corrupt object still present after Verify")
			}
			if _, err := s.Get(ctx, id, io.Discard); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after quarantine: %v", err)
			}
			// The store keeps working: the other object is intact and the
			// content can be stored again.
			checkObject(t, s, otherID, other)
			if id2, err := s.PutBytes(ctx, b); err != nil || id2 != id {
				t.Fatalf("re-put: %v", err)
			}
			checkObject(t, s, id, b)
			if _, corrupt, err := s.Verify(ctx, nil); corrupt != 0 || err != nil {
				t.Fatalf("second Verify: %d corrupt, %v", corrupt, err)
			}
		})
	}
}

func TestVerifiedCache(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{VerifiedCache: 10})
	a, b := randBytes(1, 4096), randBytes(2, 4096)
	ida, _ := s.PutBytes(ctx, a)
	idb, _ := s.PutBytes(ctx, b)
	p := make([]byte, 4096)
	if _, err := s.ReadAt(ctx, ida, p, 0); err != nil {
		t.Fatal(err)
	}
	la, _ := s.Locate(ida)
	lb, _ := s.Locate(idb)
	flipByte(t, la.Path, la.Offset+5)
	flipByte(t, lb.Path, lb.Offset+5)
	// b was never read: its first read is verified.
	if _, err := s.ReadAt(ctx, idb, p, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("first read of a corrupt object: %v", err)
	}
	// a was verified before the damage: the cache vouches for it (the
	// documented trade-off)...
	if _, err := s.ReadAt(ctx, ida, p, 0); err != nil {
		t.Fatalf("cached read: %v", err)
	}
	// ...but Verify always re-hashes.
	if _, corrupt, err := s.Verify(ctx, nil); corrupt != 2 || err != nil {
		t.Fatalf("Verify: %d corrupt, %v", corrupt, err)
	}
	if _, err := s.ReadAt(ctx, ida, p, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read after quarantine: %v", err)
	}
}

func TestOutboardDamageIsRepaired(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{})
	b := randBytes(5, 2<<20+100)
	id, _ := s.PutBytes(ctx, b)
	ob := s.outboardPath(id)
	tests := []struct {
		name   string
		damage func()
	}{
		{"flipped", func() { flipByte(t, ob, 40) }},
		{"missing", func() { os.Remove(ob) }},
		{"truncated", func() { os.Truncate(ob, 64) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.damage()
			s.forgetOutboard(id)
			p := make([]byte, 100)
			if n, err := s.ReadAt(ctx, id, p, GroupSize+5); err != nil || !bytes.Equal(p[:n], b[GroupSize+5:GroupSize+105]) {
				t.Fatalf("ReadAt with damaged outboard: %v", err)
			}
			if ok, err := checkOutboard(ob, id, int64(len(b))); !ok || err != nil {
				t.Fatalf("outboard not rebuilt: %v %v", ok, err)
			}
			tt.damage()
			if _, corrupt, err := s.Verify(ctx, nil); corrupt != 0 || err != nil {
				t.Fatalf("Verify: %d corrupt, %v", corrupt, err)
			}
			if ok, _ := checkOutboard(ob, id, int64(len(b))); !ok {
				t.Fatal("Verify did not rebuild the outboard")
			}
		})
	}
}

func TestPutVerifiedRejects(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{10, overlapMin, MaxPacked, 2 << 20} {
		s := openTest(t, t.TempDir(), Options{})
		b := randBytes(uint64(n), n)
		wrong := Sum([]byte("something else"))
		if err := s.PutVerified(ctx, wrong, bytes.NewReader(b)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: PutVerified with a wrong id: %v", n, err)
		}
		if err := s.PutBytesVerified(ctx, wrong, b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: PutBytesVerified with a wrong id: %v", n, err)
		}
		// Nothing stored, and no bytes left in a pack (packed puts write
		// while they hash and cut the pack back on a mismatch).
		if st, _ := s.Stat(); st.Objects != 0 || st.PackFileBytes != 0 {
			t.Fatalf("%d bytes: something was stored: %+v", n, st)
		}
		if err := s.PutBytesVerified(ctx, Sum(b), b); err != nil {
			t.Fatal(err)
		}
		checkObject(t, s, Sum(b), b)
		s.Close()
		s = openTest(t, t.TempDir(), Options{})
		id := Sum(b)
		if err := s.PutVerified(ctx, id, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		// Known id, wrong content: still rejected.
		bad := append([]byte{}, b...)
		bad[0] ^= 1
		if err := s.PutVerified(ctx, id, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: PutVerified of bad content for a stored id: %v", n, err)
		}
		checkObject(t, s, id, b)
	}
}

func TestRemoveListStat(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{PackSize: 64 << 10})
	sizes := []int{0, 100, 40 << 10, 50 << 10, MaxPacked, MaxPacked + 1, 3 << 20}
	want := map[ID]int64{}
	var total int64
	for i, n := range sizes {
		id, err := s.PutBytes(ctx, randBytes(uint64(i), n))
		if err != nil {
			t.Fatal(err)
		}
		want[id] = int64(n)
		total += int64(n)
	}
	list := func() map[ID]int64 {
		got := map[ID]int64{}
		var prev ID
		err := s.List(ctx, func(id ID, size int64) error {
			if bytes.Compare(id[:], prev[:]) <= 0 && len(got) > 0 {
				t.Errorf("List not in ID order")
			}
			prev = id
			got[id] = size
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got) != len(want) {
		t.Fatalf("List: %d objects, want %d", len(got), len(want))
	}
	for id, n := range list() {
		if want[id] != n {
			t.Fatalf("List: %s size %d, want %d", id, n, want[id])
		}
	}
	st, err := s.Stat()
	if err != nil || st.Objects != int64(len(sizes)) || st.Bytes != total || st.LargeObjects != 2 || st.Packs < 3 {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	stop := errors.New("stop")
	if err := s.List(ctx, func(ID, int64) error { return stop }); err != stop {
		t.Fatalf("List did not return fn's error: %v", err)
	}

	for id, n := range want {
		if err := s.Remove(ctx, id); err != nil {
			t.Fatalf("Remove %d bytes: %v", n, err)
		}
		if ok, _ := s.Has(id); ok {
			t.Fatalf("Has after Remove (%d bytes)", n)
		}
		if _, err := s.Get(ctx, id, io.Discard); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Remove: %v", err)
		}
		if err := s.Remove(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Remove: %v", err)
		}
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("List after removing all: %v", got)
	}
	// Removal persists across Open, and content can be put again.
	s.Close()
	s = openTest(t, s.Dir(), Options{PackSize: 64 << 10})
	if st, _ := s.Stat(); st.Objects != 0 {
		t.Fatalf("Stat after reopen: %+v", st)
	}
	b := randBytes(1, 100)
	id, _ := s.PutBytes(ctx, b)
	checkObject(t, s, id, b)
}

func TestTwoHandlesSeeEachOther(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openTest(t, dir, Options{})
	b := openTest(t, dir, Options{})
	for _, n := range []int{3000, 2 << 20} {
		data := randBytes(uint64(n), n)
		id, err := a.PutBytes(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		checkObject(t, b, id, data)
		if err := a.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		if ok, _ := b.Has(id); ok {
			t.Fatalf("%d bytes: removal not seen by the other handle", n)
		}
	}
}

func TestTornIndexTail(t *testing.T) {
	ctx := context.Background()
	tails := []struct {
		name string
		tail []byte
	}{
		{"partial", []byte("torn record")},
		{"zeros", make([]byte, recSize)},
		{"bad-crc", func() []byte {
			b := make([]byte, recSize)
			record{kind: recPut, pack: 1, size: 5, id: Sum([]byte("x"))}.encode(b)
			b[30] ^= 1
			return b
		}()},
	}
	for _, tt := range tails {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{})
			data := randBytes(3, 777)
			id, _ := s.PutBytes(ctx, data)
			s.Close()
			f, err := os.OpenFile(filepath.Join(dir, "index"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tt.tail)
			f.Close()
			s = openTest(t, dir, Options{})
			if fi, _ := os.Stat(filepath.Join(dir, "index")); fi.Size() != recSize {
				t.Fatalf("index is %d bytes after recovery, want %d", fi.Size(), recSize)
			}
			checkObject(t, s, id, data)
			data2 := randBytes(4, 100)
			id2, err := s.PutBytes(ctx, data2)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTest(t, dir, Options{})
			checkObject(t, s, id, data)
			checkObject(t, s, id2, data2)
		})
	}
}

func TestOpenRejectsForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "FORMAT"), []byte("something else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("Open accepted a directory with a foreign FORMAT")
	}
}

func TestContextCancel(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.Put(ctx, bytes.NewReader(randBytes(1, 20<<20))); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	if st, _ := s.Stat(); st.Objects != 0 {
		t.Fatalf("cancelled Put stored something: %+v", st)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	if got := DefaultDir(); got != "/data/xfer/cas" {
		t.Errorf("DefaultDir with XDG_DATA_HOME = %s", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got := DefaultDir(); got != "/home/u/.local/share/xfer/cas" {
		t.Errorf("DefaultDir = %s", got)
	}
}
