package hashtree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"lukechampine.com/blake3"
)

// testFileSizes returns the file sizes every hashing path is checked with.
func testFileSizes() []int64 {
	return []int64{
		0, 1, 1023, 1024, 1025, 2047, 2048, 4095, 4096, 4097, 8192,
		65535, 65536, 65537, 1 << 20, 1<<20 + 1, 3<<20 + 12345, 5 << 20, 8 << 20,
	}
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int64, seed uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(n)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// reference is BLAKE3 by lukechampine.com/blake3's incremental Hasher: its
// own tree code, not this package's (pinnedVectors pin b3sum's output).
func reference(data []byte) Digest {
	return blake3.Sum256(data)
}

// chunkDigests hashes every chunk of data with ChunkDigest.
func chunkDigests(data []byte, chunkSize int64) []Digest {
	size := int64(len(data))
	ds := make([]Digest, NumChunks(size, chunkSize))
	for i := range ds {
		off := int64(i) * chunkSize
		ds[i] = ChunkDigest(data[off:min(off+chunkSize, size)], off, size, chunkSize)
	}
	return ds
}

func TestChunkDigestCombine(t *testing.T) {
	for _, size := range testFileSizes() {
		data := testData(size, 1)
		want := reference(data)
		for _, cs := range []int64{1024, 2048, 4096, 65536, 1 << 20, 4 << 20} {
			ds := chunkDigests(data, cs)
			got, err := Combine(ds, size, cs)
			if err != nil {
				t.Fatalf("size %d chunk %d: Combine: %v", size, cs, err)
			}
			if got != want {
				t.Errorf("size %d chunk %d: Combine = %s, want %s", size, cs, got, want)
			}
			if len(ds) == 1 && ds[0] != want {
				t.Errorf("size %d chunk %d: single chunk digest = %s, want root %s", size, cs, ds[0], want)
			}
		}
	}
}

func TestSum(t *testing.T) {
	sizes := append(testFileSizes(), sumSerialMax, sumSerialMax+1, 13<<20+777)
	for _, size := range sizes {
		data := testData(size, 2)
		if got, want := Sum(data), reference(data); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", size, got, want)
		}
	}
}

func TestHashReaderAt(t *testing.T) {
	sizes := append(testFileSizes(), 4<<20-1, 4<<20, 4<<20+1, 12<<20, 17<<20+3)
	for _, size := range sizes {
		data := testData(size, 3)
		want := reference(data)
		for _, workers := range []int{0, 1, 3} {
			got, err := HashFile(context.Background(), bytes.NewReader(data), size, workers)
			if err != nil {
				t.Fatalf("HashFile(%d bytes, %d workers): %v", size, workers, err)
			}
			if got != want {
				t.Errorf("HashFile(%d bytes, %d workers) = %s, want %s", size, workers, got, want)
			}
		}
		readers := map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"onebyte":  iotest.OneByteReader(bytes.NewReader(data[:min(size, 70000)])),
			"halfread": iotest.HalfReader(bytes.NewReader(data)),
			"dataeof":  iotest.DataErrReader(bytes.NewReader(data)),
		}
		for name, r := range readers {
			wantR, wantN := want, size
			if name == "onebyte" {
				wantN = min(size, 70000)
				wantR = reference(data[:wantN])
			}
			got, n, err := HashReader(context.Background(), r)
			if err != nil {
				t.Fatalf("HashReader(%s, %d bytes): %v", name, size, err)
			}
			if got != wantR || n != wantN {
				t.Errorf("HashReader(%s, %d bytes) = %s, %d; want %s, %d", name, size, got, n, wantR, wantN)
			}
		}
	}
}

// writeTestFile writes data to a new file in dir and returns its path.
func writeTestFile(t testing.TB, dir string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHashFileOnDisk(t *testing.T) {
	data := testData(6<<20+321, 4)
	want := reference(data)
	path := writeTestFile(t, t.TempDir(), data)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	t.Run("HashFile", func(t *testing.T) {
		got, err := HashFile(context.Background(), f, int64(len(data)), 0)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("HashFile = %s, want %s", got, want)
		}
	})
	t.Run("HashReader", func(t *testing.T) {
		got, n, err := HashReader(context.Background(), io.NewSectionReader(f, 0, int64(len(data))))
		if err != nil {
			t.Fatal(err)
		}
		if got != want || n != int64(len(data)) {
			t.Errorf("HashReader = %s, %d; want %s, %d", got, n, want, len(data))
		}
	})
	t.Run("b3sum", func(t *testing.T) {
		b3sum, err := exec.LookPath("b3sum")
		if err != nil {
			t.Skip("b3sum not installed; skipping comparison with the reference tool")
		}
		out, err := exec.Command(b3sum, "--no-names", path).Output()
		if err != nil {
			t.Fatalf("b3sum: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != want.String() {
			t.Errorf("b3sum printed %s, want %s", got, want)
		}
	})
	t.Run("short file", func(t *testing.T) {
		_, err := HashFile(context.Background(), f, int64(len(data))+1, 2)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("HashFile past EOF: err = %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

// errReaderAt fails every read at or beyond failAt.
type errReaderAt struct {
	r      io.ReaderAt
	failAt int64
}

var errBoom = errors.New("boom")

func (e errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > e.failAt {
		return 0, errBoom
	}
	return e.r.ReadAt(p, off)
}

func TestHashErrors(t *testing.T) {
	data := testData(9<<20, 5)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"HashFile read error", func() error {
			_, err := HashFile(context.Background(), errReaderAt{bytes.NewReader(data), 5 << 20}, int64(len(data)), 2)
			return err
		}, errBoom},
		{"HashFile canceled", func() error {
			_, err := HashFile(canceled, bytes.NewReader(data), int64(len(data)), 2)
			return err
		}, context.Canceled},
		{"HashReader canceled", func() error {
			_, _, err := HashReader(canceled, bytes.NewReader(data))
			return err
		}, context.Canceled},
		{"HashReader read error", func() error {
			_, _, err := HashReader(context.Background(), iotest.TimeoutReader(bytes.NewReader(data)))
			return err
		}, iotest.ErrTimeout},
		{"HashFile negative size", func() error {
			_, err := HashFile(context.Background(), bytes.NewReader(data), -1, 0)
			return err
		}, nil},
		{"HashFile negative workers", func() error {
			_, err := HashFile(context.Background(), bytes.NewReader(data), 10, -1)
			return err
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHashFileCancelMidway(t *testing.T) {
	data := testData(32<<20, 6)
	ctx, cancel := context.WithCancel(context.Background())
	r := cancelAfter{r: bytes.NewReader(data), at: 8 << 20, cancel: cancel}
	_, err := HashFile(ctx, r, int64(len(data)), 2)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// cancelAfter cancels a context once a read reaches offset at.
type cancelAfter struct {
	r      io.ReaderAt
	at     int64
	cancel context.CancelFunc
}

func (c cancelAfter) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.at {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

func TestTree(t *testing.T) {
	for _, size := range []int64{0, 1, 1024, 5000, 65537, 3<<20 + 12345} {
		data := testData(size, 7)
		want := reference(data)
		for _, cs := range []int64{1024, 4096, 1 << 20} {
			ds := chunkDigests(data, cs)
			tree := NewTree(size, cs)
			if tree.Len() != int64(len(ds)) {
				t.Fatalf("size %d chunk %d: Len = %d, want %d", size, cs, tree.Len(), len(ds))
			}
			r := rand.New(rand.NewPCG(uint64(size), uint64(cs)))
			order := r.Perm(len(ds))
			for n, i := range order {
				if tree.Complete() {
					t.Fatalf("size %d chunk %d: complete after %d of %d", size, cs, n, len(ds))
				}
				if _, err := tree.Root(); err == nil {
					t.Fatalf("size %d chunk %d: Root succeeded while incomplete", size, cs)
				}
				if err := tree.Set(int64(i), ds[i]); err != nil {
					t.Fatal(err)
				}
				if !tree.Has(int64(i)) {
					t.Fatalf("Has(%d) = false after Set", i)
				}
				if n == len(order)/2 {
					var wantMissing []int64
					for _, j := range order[n+1:] {
						wantMissing = append(wantMissing, int64(j))
					}
					slices.Sort(wantMissing)
					if got := tree.Missing(); !slices.Equal(got, wantMissing) {
						t.Fatalf("size %d chunk %d: Missing = %v, want %v", size, cs, got, wantMissing)
					}
				}
			}
			if !tree.Complete() || len(tree.Missing()) != 0 {
				t.Fatalf("size %d chunk %d: not complete after all Sets", size, cs)
			}
			got, err := tree.Root()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("size %d chunk %d: Root = %s, want %s", size, cs, got, want)
			}
		}
	}
}

func TestTreeErrors(t *testing.T) {
	tree := NewTree(10000, 4096)
	d := Digest{1}
	if err := tree.Set(1, d); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		tree  *Tree
		index int64
		d     Digest
		ok    bool
	}{
		{"same digest again", tree, 1, d, true},
		{"conflicting digest", tree, 1, Digest{2}, false},
		{"negative index", tree, -1, d, false},
		{"index past end", tree, 3, d, false},
		{"invalid chunk size", NewTree(10000, 1000), 0, d, false},
		{"negative file size", NewTree(-1, 4096), 0, d, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tree.Set(tt.index, tt.d)
			if (err == nil) != tt.ok {
				t.Errorf("Set(%d) err = %v, want ok=%v", tt.index, err, tt.ok)
			}
			if tt.tree != tree {
				if _, err := tt.tree.Root(); err == nil {
					t.Error("Root of invalid tree succeeded")
				}
			}
		})
	}
	if tree.Has(-1) || tree.Has(3) || tree.Has(0) {
		t.Error("Has reports unset or out-of-range chunks")
	}
	if got := tree.Missing(); !slices.Equal(got, []int64{0, 2}) {
		t.Errorf("Missing = %v, want [0 2]", got)
	}
}

func TestCombineErrors(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		fileSize  int64
		chunkSize int64
	}{
		{"too few", 2, 10000, 4096},
		{"too many", 4, 10000, 4096},
		{"none for empty file", 0, 0, 4096},
		{"bad chunk size", 3, 10000, 3000},
		{"negative size", 1, -5, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Combine(make([]Digest, tt.n), tt.fileSize, tt.chunkSize); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestChunkDigestPanics(t *testing.T) {
	buf := make([]byte, 8192)
	tests := []struct {
		name                     string
		data                     []byte
		off, fileSize, chunkSize int64
	}{
		{"bad chunk size", buf[:1000], 0, 1000, 1000},
		{"misaligned offset", buf[:4096], 100, 10000, 4096},
		{"negative offset", buf[:4096], -4096, 10000, 4096},
		{"offset past end", buf[:0], 12288, 10000, 4096},
		{"short chunk", buf[:4000], 0, 10000, 4096},
		{"long last chunk", buf[:4096], 8192, 10000, 4096},
		{"negative file size", buf[:0], 0, -1, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			ChunkDigest(tt.data, tt.off, tt.fileSize, tt.chunkSize)
		})
	}
}

func TestValidChunkSize(t *testing.T) {
	tests := []struct {
		n  int64
		ok bool
	}{
		{-1024, false}, {0, false}, {1, false}, {512, false}, {1000, false},
		{1024, true}, {3072, false}, {4096, true}, {DefaultChunkSize, true},
		{1 << 30, true}, {1<<30 + 1024, false}, {1 << 31, false},
	}
	for _, tt := range tests {
		if err := ValidChunkSize(tt.n); (err == nil) != tt.ok {
			t.Errorf("ValidChunkSize(%d) = %v, want ok=%v", tt.n, err, tt.ok)
		}
	}
}

func TestNumChunks(t *testing.T) {
	tests := []struct{ size, cs, want int64 }{
		{0, 1024, 1}, {1, 1024, 1}, {1024, 1024, 1}, {1025, 1024, 2},
		{8 << 20, 4 << 20, 2}, {8<<20 + 1, 4 << 20, 3}, {1<<62 + 1, 1 << 30, 1<<32 + 1},
	}
	for _, tt := range tests {
		if got := NumChunks(tt.size, tt.cs); got != tt.want {
			t.Errorf("NumChunks(%d, %d) = %d, want %d", tt.size, tt.cs, got, tt.want)
		}
	}
}

func TestDigestString(t *testing.T) {
	// BLAKE3 of the empty input, from the BLAKE3 specification.
	const empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := Sum(nil).String(); got != empty {
		t.Fatalf("Sum(nil) = %s, want %s", got, empty)
	}
	tests := []struct {
		in   string
		want string // "" means an error is expected
	}{
		{empty, empty},
		{strings.ToUpper(empty), empty},
		{"", ""},
		{empty[:63], ""},
		{empty + "0", ""},
		{empty[:62] + "zz", ""},
		{" " + empty[1:], ""},
	}
	for _, tt := range tests {
		d, err := ParseDigest(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseDigest(%q) succeeded", tt.in)
		case tt.want != "" && err != nil:
			t.Errorf("ParseDigest(%q): %v", tt.in, err)
		case tt.want != "" && d.String() != tt.want:
			t.Errorf("ParseDigest(%q) = %s, want %s", tt.in, d, tt.want)
		}
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("hello, xfer"), uint8(3))
	f.Add(testData(5000, 8), uint8(1))
	f.Add(testData(7000, 9), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunkExp uint8) {
		cs := int64(MinChunkSize) << (chunkExp % 8)
		size := int64(len(data))
		want := reference(data)
		got, err := Combine(chunkDigests(data, cs), size, cs)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%d bytes, chunk %d: Combine = %s, want %s", size, cs, got, want)
		}
		if s := Sum(data); s != want {
			t.Errorf("%d bytes: Sum = %s, want %s", size, s, want)
		}
	})
}

func TestTreeConcurrent(t *testing.T) {
	const size, cs = 1<<20 + 77, 4096
	data := testData(size, 12)
	ds := chunkDigests(data, cs)
	tree := NewTree(size, cs)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(ds); i += 4 {
				if err := tree.Set(int64(i), ds[i]); err != nil {
					t.Error(err)
				}
				tree.Has(int64(i))
			}
		})
	}
	wg.Wait()
	got, err := tree.Root()
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(data); got != want {
		t.Errorf("Root = %s, want %s", got, want)
	}
}

// TestSumSmall: every size up to a little past one SIMD group, with the
// slice's capacity ending at its length (copied) or running on into other
// bytes (read in place; they must not count).
func TestSumSmall(t *testing.T) {
	big := testData(3*group, 3)
	for size := 0; size <= group+2*1024+1; size++ {
		if size > 3*1024 && size < group-3*1024 && size%97 != 0 {
			continue // all sizes near the edges, a sample between
		}
		want := reference(big[:size])
		tight := append([]byte(nil), big[:size]...)
		if got := Sum(tight[:size:size]); got != want {
			t.Fatalf("Sum(%d bytes, tight capacity) = %s, want %s", size, got, want)
		}
		if got := Sum(big[:size]); got != want {
			t.Fatalf("Sum(%d bytes, spare capacity) = %s, want %s", size, got, want)
		}
	}
}

// boundarySizes are input sizes at and beside the boundaries the hashing
// code cuts at: a BLAKE3 chunk (1 KiB), a SIMD group and a leaf (16 KiB),
// the kernels' smallest subtree (32 KiB), the smallest piece (64 KiB), the
// kernels' largest subtree in one go (256 KiB), a chunk of xfer's
// (DefaultChunkSize) and several of them.
func boundarySizes() []int64 {
	var sizes []int64
	for _, b := range []int64{1 << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10, DefaultChunkSize, 3 * DefaultChunkSize} {
		sizes = append(sizes, b-1, b, b+1)
	}
	return append(sizes, 0, 17<<20+16<<10+1)
}

// TestHashFileBoundaries: HashFile on 1, 2 and 8 workers, from a mapped
// file and through ReadAt, gives BLAKE3's digest at every boundary size.
func TestHashFileBoundaries(t *testing.T) {
	dir := t.TempDir()
	for _, size := range boundarySizes() {
		data := testData(size, 22)
		want := reference(data)
		path := filepath.Join(dir, fmt.Sprintf("f%d", size))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 8} {
			for name, r := range map[string]io.ReaderAt{"file": f, "readerat": bytes.NewReader(data)} {
				got, err := HashFile(context.Background(), r, size, workers)
				if err != nil {
					t.Fatalf("HashFile(%s, %d bytes, %d workers): %v", name, size, workers, err)
				}
				if got != want {
					t.Errorf("HashFile(%s, %d bytes, %d workers) = %s, want %s", name, size, workers, got, want)
				}
			}
		}
		f.Close()
		if got := Sum(data); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", size, got, want)
		}
	}
}

// TestMappingShrunk: a file truncated under its mapping makes the piece's
// hash an error, not a crash (SIGBUS turned into a panic and recovered).
func TestMappingShrunk(t *testing.T) {
	const size = 8 << 20
	path := writeTestFile(t, t.TempDir(), testData(size, 23))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := mapFile(f, size)
	if m == nil {
		t.Fatal("mapFile: the file was not mapped")
	}
	defer m.close()
	if _, err := m.digest(0, 4<<20); err != nil {
		t.Fatalf("digest before the truncate: %v", err)
	}
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	_, err = m.digest(4<<20, 4<<20)
	if err == nil || !strings.Contains(err.Error(), "vanished while they were hashed") {
		t.Errorf("digest after the truncate: err = %v, want the file-shrank error", err)
	}
	if mapFile(f, size) != nil {
		t.Error("mapFile of a file shorter than asked: mapped, want nil (pread reports it)")
	}
}
