package hashtree

import (
	"context"
	"os"
	"testing"

	"github.com/zeebo/blake3"
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
	b.Run("zeebo", func(b *testing.B) {
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
	b.Run("zeebo", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			blake3.Sum256(data)
		}
	})
}
