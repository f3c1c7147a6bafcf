package receive

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/xfer-io/xfer/transfer/wire"
)

// writeSmall keeps the all-zero blocks of a sparse small file as holes,
// writes every byte of one that is not sparse, and both read back alike.
func TestWriteSmallSparse(t *testing.T) {
	data := make([]byte, 300<<10+100) // not a whole number of blocks
	copy(data[8192:], "middle")
	copy(data[len(data)-3:], "end")
	for _, sparse := range []bool{true, false} {
		p := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeSmall(int(f.Fd()), &wire.SmallFile{Data: data, Sparse: sparse}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("sparse=%v: read back %d bytes, %v", sparse, len(got), err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if sparse && st.Blocks > 32 {
			t.Errorf("sparse: %d blocks allocated for two blocks of data", st.Blocks)
		}
		if !sparse && st.Blocks*512 < int64(len(data)) {
			t.Errorf("not sparse: only %d blocks allocated", st.Blocks)
		}
	}
}
