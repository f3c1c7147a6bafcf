package cas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"testing"

	"lukechampine.com/blake3"
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
	s := openTest(t, t.TempDir(), Options{Workers: 2})
	for _, n := range sizes {
		b := randBytes(uint64(n), n)
		want := ID(blake3.Sum256(b))
		if got := Sum(b); got != want {
			t.Errorf("Sum(%d bytes) = %s, want %s", n, got, want)
		}
		if got := s.sum(b); got != want {
			t.Errorf("Store.sum(%d bytes) = %s, want %s", n, got, want)
		}
	}
}

// TestPinnedIDs pins the IDs and outboard files of objects put every way
// (b3sum's output for the BLAKE3 test-vector pattern, byte i = i mod 251;
// outboards by their SHA-256 as written before the tree moved to
// internal/hashtree): stored objects keep their names and outboards.
func TestPinnedIDs(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		size     int
		id       string
		outboard string // SHA-256 of the outboard file; "" when there is none
	}{
		{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", ""},
		{4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969", ""},
		{3*GroupSize + 17, "5f66ff8388c651bb0e1b7f60e49a03f53a060e292a9a7f000ea55ab2755a0a0a", ""},
		{1<<20 + 3*GroupSize + 17, "5b63d446671f3de3b861f213920c3f161c5d162e0a96e7100daab676f3ca811e",
			"db89fa862f153a2a20d429f499db8eb2d480492efe888b4ee73d97c8775dfcb9"},
		{8<<20 + 5, "45ece37e2311055650b20dcde6042e536c43d7263aba359e7761241a2f14ae1b",
			"855d562d0754335367c5320dd66e9c953e671b5770dc323d77f3d9dc25e0b653"},
	}
	for _, tt := range tests {
		b := make([]byte, tt.size)
		for i := range b {
			b[i] = byte(i % 251)
		}
		if got := Sum(b).String(); got != tt.id {
			t.Errorf("Sum(%d bytes) = %s, want %s", tt.size, got, tt.id)
		}
		for _, way := range putWays {
			s := openTest(t, t.TempDir(), Options{})
			id := way.put(ctx, t, s, b)
			if id.String() != tt.id {
				t.Errorf("%s of %d bytes: id %s, want %s", way.name, tt.size, id, tt.id)
			}
			ob, err := os.ReadFile(s.outboardPath(id))
			switch {
			case tt.outboard == "" && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("%s of %d bytes: outboard %v, want none", way.name, tt.size, err)
			case tt.outboard == "":
			case err != nil:
				t.Errorf("%s of %d bytes: %v", way.name, tt.size, err)
			case len(ob) != (tt.size+GroupSize-1)/GroupSize*cvSize:
				t.Errorf("%s of %d bytes: outboard of %d bytes", way.name, tt.size, len(ob))
			default:
				if sum := sha256.Sum256(ob); hex.EncodeToString(sum[:]) != tt.outboard {
					t.Errorf("%s of %d bytes: outboard SHA-256 %x, want %s", way.name, tt.size, sum, tt.outboard)
				}
			}
			checkObject(t, s, id, b)
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
