package hashtree

import (
	"context"
	"os"
	"strconv"
	"testing"

	"lukechampine.com/blake3"
)

func BenchmarkChunkDigest4MiB(b *testing.B) {
	const size = 4 << 20
	data := testData(size, 10)
	b.Run("xfer", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			// A middle chunk of a larger file: a plain subtree, not a root.
			ChunkDigest(data, size, 4*size, size)
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			blake3.Sum256(data)
		}
	})
}

func BenchmarkHashFile(b *testing.B) {
	const size = 256 << 20
	dir := "/dev/shm"
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = b.TempDir()
	}
	dir, err := os.MkdirTemp(dir, "hashtree-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	data := testData(size, 11)
	f, err := os.Open(writeTestFile(b, dir, data))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()

	b.Run("HashFile", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := HashFile(context.Background(), f, size, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Sum", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			Sum(data)
		}
	})
	b.Run("reference", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			blake3.Sum256(data)
		}
	})
}

// BenchmarkSumSizes hashes inputs that end in a partial subtree, the case
// where the tail's decomposition matters.
func BenchmarkSumSizes(b *testing.B) {
	for _, size := range []int64{4 << 10, 13 << 10, 100 << 10, 1<<20 + 5<<10} {
		data := testData(size, 12)
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				Sum(data)
			}
		})
	}
	// The last, partial chunk of a file of 7 MiB + 12345 bytes cut into
	// 4 MiB chunks.
	const tail = 3<<20 + 12345
	data := testData(tail, 13)
	b.Run("ChunkDigestTail", func(b *testing.B) {
		b.SetBytes(tail)
		for b.Loop() {
			ChunkDigest(data, 4<<20, 4<<20+tail, 4<<20)
		}
	})
}

func byteSize(n int64) string {
	if n%1024 == 0 {
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}
