package hashtree

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

// patternData returns the BLAKE3 test-vector input: byte i is i mod 251.
func patternData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// pinnedVectors are b3sum's output for patternData(size); they keep every
// hashing path byte-for-byte what it was (CAS object IDs are these digests).
var pinnedVectors = []struct {
	size int
	want string
}{
	{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
	{4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
	{3*65536 + 17, "5f66ff8388c651bb0e1b7f60e49a03f53a060e292a9a7f000ea55ab2755a0a0a"},
	{1<<20 + 3*65536 + 17, "5b63d446671f3de3b861f213920c3f161c5d162e0a96e7100daab676f3ca811e"},
	{8<<20 + 5, "45ece37e2311055650b20dcde6042e536c43d7263aba359e7761241a2f14ae1b"},
}

func TestPinnedVectors(t *testing.T) {
	for _, v := range pinnedVectors {
		data := patternData(v.size)
		want, err := ParseDigest(v.want)
		if err != nil {
			t.Fatal(err)
		}
		if got := Sum(data); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", v.size, got, want)
		}
		if got := SumWorkers(data, 1); got != want {
			t.Errorf("SumWorkers(%d bytes, 1) = %s, want %s", v.size, got, want)
		}
		if got, err := Combine(chunkDigests(data, 64<<10), int64(v.size), 64<<10); err != nil || got != want {
			t.Errorf("Combine(%d bytes in 64 KiB chunks) = %s, %v; want %s", v.size, got, err, want)
		}
		if got, _, err := HashReader(context.Background(), bytes.NewReader(data)); err != nil || got != want {
			t.Errorf("HashReader(%d bytes) = %s, %v; want %s", v.size, got, err, want)
		}
		s := NewStream(64<<10, 2, nil)
		if err := s.Add(data); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Sum(); err != nil || got != want {
			t.Errorf("Stream(%d bytes) = %s, %v; want %s", v.size, got, err, want)
		}
	}
}

// TestStream checks Stream's hash and outboard for inputs added in runs of
// several sizes, against the reference and against ChunkDigest.
func TestStream(t *testing.T) {
	const piece = 64 << 10
	sizes := []int{0, 1, 1023, 1024, 1025, 16383, 16384, 16385, piece - 1, piece, piece + 1,
		2*piece + 7, 3 * piece, 1 << 20, 1<<20 + 1, 5<<20 + 12345}
	for _, n := range sizes {
		data := testData(int64(n), 3)
		want := reference(data)
		np := max(1, (n+piece-1)/piece)
		for _, run := range []int{piece, 3 * piece, 1 << 20} {
			for _, workers := range []int{1, 2, 5} {
				var outboard []Digest
				s := NewStream(piece, workers, func(d Digest) error { outboard = append(outboard, d); return nil })
				for off := 0; off < n; off += run {
					if err := s.Add(data[off:min(off+run, n)]); err != nil {
						t.Fatal(err)
					}
				}
				if s.Len() != int64(n) {
					t.Errorf("%d bytes: Len %d", n, s.Len())
				}
				got, err := s.Sum()
				if err != nil || got != want {
					t.Errorf("Stream(%d bytes, runs of %d, %d workers) = %s, %v; want %s", n, run, workers, got, err, want)
				}
				if np == 1 {
					if len(outboard) != 0 {
						t.Errorf("%d bytes: %d outboard digests for a single piece", n, len(outboard))
					}
					continue
				}
				if !slices.Equal(outboard, chunkDigests(data, piece)) {
					t.Errorf("%d bytes, runs of %d: outboard differs from ChunkDigest's %d pieces", n, run, np)
				}
				var m Merger
				for _, d := range outboard[:len(outboard)-1] {
					m.Push(d)
				}
				if got := m.Root(outboard[len(outboard)-1]); got != want {
					t.Errorf("Merger over the outboard of %d bytes = %s, want %s", n, got, want)
				}
			}
		}
	}
}

func TestStreamOutboardError(t *testing.T) {
	boom := errors.New("disk full")
	calls := 0
	s := NewStream(1024, 2, func(Digest) error { calls++; return boom })
	if err := s.Add(testData(4096, 4)); !errors.Is(err, boom) {
		t.Fatalf("Add = %v, want %v", err, boom)
	}
	if err := s.Add(testData(4096, 5)); !errors.Is(err, boom) {
		t.Fatalf("second Add = %v, want %v", err, boom)
	}
	if _, err := s.Sum(); !errors.Is(err, boom) {
		t.Fatalf("Sum error = %v, want %v", err, boom)
	}
	if calls != 1 {
		t.Errorf("outboard called %d times after failing, want once", calls)
	}
}

func TestStreamPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"piece size not a power of two", func() { NewStream(3000, 1, nil) }},
		{"piece size below a BLAKE3 chunk", func() { NewStream(512, 1, nil) }},
		{"bytes after a short piece", func() {
			s := NewStream(1024, 1, nil)
			s.Add(make([]byte, 1500))
			s.Add(make([]byte, 1024))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tt.f()
		})
	}
}

func TestMergerSingle(t *testing.T) {
	d := Sum([]byte("one piece"))
	var m Merger
	if got := m.Root(d); got != d {
		t.Errorf("Root with nothing pushed = %s, want the piece's digest %s", got, d)
	}
}
