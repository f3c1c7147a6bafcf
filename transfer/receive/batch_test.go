package receive

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/hashtree"
)

// batchPayload is a batch of n files of size bytes spread over dirs
// directories, verified when verify is set.
func batchPayload(n, size, dirs int, verify bool, mode uint32) []byte {
	e := wire.Enc{}
	if verify {
		e.U8(1)
	} else {
		e.U8(0)
	}
	for i := range n {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i + j*7)
		}
		sf := wire.SmallFile{Path: fmt.Sprintf("d%d/f%d", i%dirs, i), Mode: mode, MtimeNs: 1_600_000_000_123_456_789, Data: data}
		sf.Digest = hashtree.Sum(data)
		wire.AppendSmall(&e, &sf)
	}
	return e.Buf
}

// BenchmarkWriteBatch: the receiver's side of a copy of small files (new
// files, then the same again as updates), the per-file cost in ns/op.
func BenchmarkWriteBatch(b *testing.B) {
	for _, c := range []struct {
		name   string
		check  wire.BatchCheck
		update bool
	}{{"new", wire.BatchUnchecked, false}, {"new-verify", wire.BatchWhole, false}, {"update", wire.BatchUnchecked, true}} {
		b.Run(c.name, func(b *testing.B) {
			const n = 256
			base := b.TempDir()
			if shm, err := os.MkdirTemp("/dev/shm", "wb"); err == nil {
				base = shm
				defer os.RemoveAll(shm)
			}
			root, err := fsroot.Open(base)
			if err != nil {
				b.Fatal(err)
			}
			defer root.Close()
			r := newReceiver(root, Options{NoFsync: true}, false, false, "")
			p := batchPayload(n, 4096, 8, c.check != wire.BatchUnchecked, 0o644)
			b.ResetTimer()
			cpu0 := cpuNs()
			for i := 0; i < b.N; i += n {
				if !c.update {
					b.StopTimer()
					ents, _ := os.ReadDir(base)
					for _, en := range ents {
						os.RemoveAll(filepath.Join(base, en.Name()))
					}
					b.StartTimer()
				}
				errs, err := r.WriteBatch(p, n, c.check)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range errs {
					if e != "" {
						b.Fatal(e)
					}
				}
			}
			b.ReportMetric(float64(cpuNs()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuNs is the CPU time (user and system) of the process: steadier than
// wall time on a shared machine.
func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestWriteBatchModes: files of a batch land with their exact modes and
// mtimes, new or replacing old ones, and nothing else stays behind.
func TestWriteBatchModes(t *testing.T) {
	root, _ := fsroottest.Temp(t)
	r := newReceiver(root, Options{}, false, false, "")
	modes := []uint32{0o644, 0o600, 0o444, 0o777, 0o4755, 0o1777, 0o2750, 0o000, 0o666}
	for round := range 3 { // new files, then updates over them, then new again
		e := wire.Enc{}
		e.U8(1)
		for i, m := range modes {
			data := []byte(fmt.Sprintf("round %d file %d", round, i))
			sf := wire.SmallFile{Path: fmt.Sprintf("d%d/f%d", i%2, i), Mode: m, MtimeNs: int64(1_600_000_000_000_000_000 + i*1001 + round), Data: data}
			sf.Digest = hashtree.Sum(data)
			wire.AppendSmall(&e, &sf)
		}
		r.updating.Store(round == 2) // named partial files too
		errs, err := r.WriteBatch(e.Buf, len(modes), wire.BatchPerFile)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range modes {
			if errs[i] != "" {
				t.Fatalf("round %d file %d: %s", round, i, errs[i])
			}
			p := filepath.Join(root.Path(), fmt.Sprintf("d%d/f%d", i%2, i))
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != m || st.Mtim.Nano() != int64(1_600_000_000_000_000_000+i*1001+round) {
				t.Errorf("round %d %s: mode %o mtime %d, want %o", round, p, st.Mode&0o7777, st.Mtim.Nano(), m)
			}
			if b, _ := os.ReadFile(p); string(b) != fmt.Sprintf("round %d file %d", round, i) {
				t.Errorf("round %d %s: %q", round, p, b)
			}
		}
		if round == 1 {
			for _, p := range []string{"d0", "d1"} {
				os.RemoveAll(filepath.Join(root.Path(), p))
			}
		}
		for _, dir := range []string{"d0", "d1"} {
			ents, _ := os.ReadDir(filepath.Join(root.Path(), dir))
			for _, en := range ents {
				if !strings.HasPrefix(en.Name(), "f") {
					t.Errorf("round %d: left behind %s/%s", round, dir, en.Name())
				}
			}
		}
	}
}

// TestWriteBatchVerifyOne: in a verified batch of files of 0-9 KiB (their
// chunks hashed side by side), a file whose digest does not match its
// data is refused and left absent, and every other file lands.
func TestWriteBatchVerifyOne(t *testing.T) {
	sizes := []int{0, 1, 1023, 1024, 1025, 2048, 4097, 8192, 9000}
	for bad := range sizes {
		t.Run(fmt.Sprint(sizes[bad]), func(t *testing.T) {
			root, _ := fsroottest.Temp(t)
			r := newReceiver(root, Options{}, false, false, "")
			e := wire.Enc{}
			e.U8(1)
			for i, n := range sizes {
				data := make([]byte, n)
				for j := range data {
					data[j] = byte(i*31 + j*7)
				}
				sf := wire.SmallFile{Path: fmt.Sprintf("f%d", i), Mode: 0o644, Data: data}
				sf.Digest = hashtree.Sum(data)
				if i == bad {
					sf.Digest[5] ^= 1
				}
				wire.AppendSmall(&e, &sf)
			}
			errs, err := r.WriteBatch(e.Buf, len(sizes), wire.BatchPerFile)
			if err != nil {
				t.Fatal(err)
			}
			for i := range sizes {
				_, serr := os.Stat(filepath.Join(root.Path(), fmt.Sprintf("f%d", i)))
				switch {
				case i == bad && !strings.Contains(errs[i], "failed BLAKE3 verification"):
					t.Errorf("corrupt file %d: verdict %q", i, errs[i])
				case i == bad && serr == nil:
					t.Errorf("corrupt file %d was written", i)
				case i != bad && (errs[i] != "" || serr != nil):
					t.Errorf("file %d of %d bytes: verdict %q, stat %v", i, sizes[i], errs[i], serr)
				}
			}
		})
	}
}

// TestWriteBatchWholeAltered: under wire.BatchWhole (a tagged session,
// whose tag leaves the files' data to their digests) one file that fails
// its digest refuses the whole batch with wire.ErrBatchAltered before any
// file is written, whichever file it is; the same batch intact lands.
func TestWriteBatchWholeAltered(t *testing.T) {
	sizes := []int{0, 1, 1023, 1024, 1025, 4097, 9000}
	batch := func(bad int) []byte {
		e := wire.Enc{}
		e.U8(0)
		for i, n := range sizes {
			data := bytes.Repeat([]byte{byte(i + 1)}, n)
			sf := wire.SmallFile{Path: fmt.Sprintf("d/f%d", i), Mode: 0o644, Data: data}
			sf.Digest = hashtree.Sum(data)
			if i == bad {
				if n > 0 {
					sf.Data = append([]byte(nil), data...)
					sf.Data[n/2] ^= 0x40 // altered on the way: the digest is the sender's
				} else {
					sf.Digest[0] ^= 1
				}
			}
			wire.AppendSmall(&e, &sf)
		}
		return e.Buf
	}
	for bad := -1; bad < len(sizes); bad++ {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			root, _ := fsroottest.Temp(t)
			r := newReceiver(root, Options{}, false, false, "")
			errs, err := r.WriteBatch(batch(bad), len(sizes), wire.BatchWhole)
			ents, _ := os.ReadDir(filepath.Join(root.Path(), "d"))
			if bad < 0 {
				if err != nil || len(errs) != len(sizes) || len(ents) != len(sizes) {
					t.Fatalf("intact batch: err %v, verdicts %q, %d files written", err, errs, len(ents))
				}
				return
			}
			if !errors.Is(err, wire.ErrBatchAltered) {
				t.Fatalf("file %d altered: err %v (verdicts %q), want ErrBatchAltered", bad, err, errs)
			}
			if len(ents) != 0 {
				t.Errorf("file %d altered: %d entries written", bad, len(ents))
			}
		})
	}
}

// TestWriteBatchTrailingBytes: a batch with bytes after its last file is
// refused as malformed (they are not covered by any file's digest).
func TestWriteBatchTrailingBytes(t *testing.T) {
	root, _ := fsroottest.Temp(t)
	r := newReceiver(root, Options{}, false, false, "")
	e := wire.Enc{}
	e.U8(0)
	sf := wire.SmallFile{Path: "f", Mode: 0o644, Data: []byte("x")}
	sf.Digest = hashtree.Sum(sf.Data)
	wire.AppendSmall(&e, &sf)
	for _, extra := range [][]byte{nil, {0}, []byte("trailing")} {
		_, err := r.WriteBatch(append(append([]byte(nil), e.Buf...), extra...), 1, wire.BatchPerFile)
		if (err != nil) != (len(extra) > 0) {
			t.Errorf("%d trailing bytes: err %v", len(extra), err)
		}
	}
}
