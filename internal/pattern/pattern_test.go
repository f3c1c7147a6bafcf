package pattern

import (
	"bytes"
	"compress/flate"
	"testing"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		name        string
		n           int
		seed, seed2 uint64
		same        bool
	}{
		{"same seed, same bytes", 4096, 7, 7, true},
		{"other seed, other bytes", 4096, 7, 8, false},
		{"seed zero differs from one", 64, 0, 1, false},
		{"largest seed", 64, ^uint64(0), ^uint64(0), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Bytes(tc.n, tc.seed), Bytes(tc.n, tc.seed2)
			if len(a) != tc.n {
				t.Fatalf("len = %d, want %d", len(a), tc.n)
			}
			if bytes.Equal(a, b) != tc.same {
				t.Errorf("Bytes(%d, %d) == Bytes(%d, %d): %v, want %v", tc.n, tc.seed, tc.n, tc.seed2, !tc.same, tc.same)
			}
		})
	}
}

// TestIncompressible: the pattern is for payloads that compression on the
// way must not shrink.
func TestIncompressible(t *testing.T) {
	for _, seed := range []uint64{0, 1, 42, ^uint64(0)} {
		var out bytes.Buffer
		w, _ := flate.NewWriter(&out, flate.BestCompression)
		w.Write(Bytes(1<<16, seed))
		w.Close()
		if out.Len() < 1<<16 {
			t.Errorf("seed %d: 64 KiB compress to %d bytes", seed, out.Len())
		}
	}
}

// TestStream: a stream read in pieces of any size gives the same bytes as
// Bytes of the whole length.
func TestStream(t *testing.T) {
	const n = 1<<16 + 13
	want := Bytes(n, 9)
	for _, piece := range []int{1, 7, 8, 4096, n} {
		s := NewStream(9)
		got := make([]byte, 0, n)
		for len(got) < n {
			b := make([]byte, min(piece, n-len(got)))
			if k, err := s.Read(b); k != len(b) || err != nil {
				t.Fatalf("piece %d: Read = %d, %v", piece, k, err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pieces of %d differ from Bytes(%d, 9)", piece, n)
		}
	}
}
