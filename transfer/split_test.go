package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// TestSplitLeftoversRemoved: an interrupted cluster run that split a file
// leaves the shared partial file and share journals beside it; a later run
// that does not split the file the same way (or at all) removes them when
// it puts the file in place, for local and served destinations.
func TestSplitLeftoversRemoved(t *testing.T) {
	addr, srvRoot := startTestServer(t)
	for _, tc := range []struct {
		name string
		dst  Endpoint
		root func(string) string
	}{
		{"local", Endpoint{Path: ""}, func(d string) string { return d }},
		{"served", Endpoint{Addr: addr, Path: "d"}, func(string) string { return filepath.Join(srvRoot, "d") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "big.bin"), 3<<20)
			dst := tc.dst
			if dst.Path == "" {
				dst.Path = t.TempDir()
			}
			dir := tc.root(dst.Path)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			leftovers := []string{receive.SplitPartName("big.bin"), receive.ShareJournalName("big.bin", 0), receive.ShareJournalName("big.bin", 2)}
			for _, n := range leftovers {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Run(context.Background(), Endpoint{Path: src}, dst,
				wire.Options{ChunkSize: 1 << 20, NoFsync: true}, session.DialOptions{}, progress.Discard); err != nil {
				t.Fatal(err)
			}
			for _, n := range leftovers {
				if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
					t.Errorf("%s left beside the file", n)
				}
			}
		})
	}
}
