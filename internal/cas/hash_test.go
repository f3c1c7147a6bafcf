package cas

import (
	"bytes"
	"math/rand/v2"
	"testing"

	zeebo "github.com/zeebo/blake3"
)

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

func TestSumMatchesReference(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4096, 16383, 16384, 16385,
		GroupSize - 1, GroupSize, GroupSize + 1, 2*GroupSize + 7, 3 * GroupSize,
		1 << 20, 1<<20 + 1, 5<<20 + 12345, 8 << 20}
	for _, n := range sizes {
		b := randBytes(uint64(n), n)
		want := ID(zeebo.Sum256(b))
		if got := Sum(b); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", n, got, want)
		}
		// Streaming in batches of whole groups, with an outboard.
		for _, batch := range []int{GroupSize, 3 * GroupSize, 1 << 20} {
			var cvs [][8]uint32
			h := treeHasher{cvs: func(cv [8]uint32) error { cvs = append(cvs, cv); return nil }}
			for off := 0; off < len(b); off += batch {
				h.writeParallel(b[off:min(off+batch, len(b))], 2)
			}
			if got := h.sum(); got != want {
				t.Errorf("treeHasher(%d bytes, batch %d) = %s, want %s", n, batch, got, want)
			}
			ng := (n + GroupSize - 1) / GroupSize
			if ng < 2 {
				if len(cvs) != 0 {
					t.Errorf("%d bytes: %d outboard CVs for a single group", n, len(cvs))
				}
				continue
			}
			if len(cvs) != ng {
				t.Fatalf("%d bytes: %d outboard CVs, want %d", n, len(cvs), ng)
			}
			if got := rootFromCVs(cvs); got != want {
				t.Errorf("rootFromCVs(%d bytes) = %s, want %s", n, got, want)
			}
			for g := range ng {
				if cv := groupCV(b[g*GroupSize:min((g+1)*GroupSize, n)], uint64(g)); cv != cvs[g] {
					t.Errorf("%d bytes: groupCV(%d) differs from outboard", n, g)
				}
			}
		}
	}
}

func TestParseID(t *testing.T) {
	id := Sum([]byte("hello"))
	tests := []struct {
		in      string
		want    ID
		wantErr bool
	}{
		{id.String(), id, false},
		{string(bytes.ToUpper([]byte(id.String()))), id, false},
		{id.String()[:63], ID{}, true},
		{"zz" + id.String()[2:], ID{}, true},
		{"", ID{}, true},
	}
	for _, tt := range tests {
		got, err := ParseID(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseID(%q) = %v, %v", tt.in, got, err)
		}
	}
}
