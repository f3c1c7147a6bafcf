package transfer

import (
	"os"
	"path/filepath"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/transfer/wire"
)

// xattrSupport is what the tree at dir (or, while it does not exist yet,
// the nearest directory above it) can store of extended attributes, as
// this process: said in the handshake.
func xattrSupport(dir string) *wire.XattrSupport {
	dir = filepath.Clean(dir)
	for i := 0; i < 256; i++ {
		if info, err := os.Stat(dir); err == nil && info.IsDir() {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			return nil
		}
		dir = up
	}
	user, acls := fsroot.XattrSupport(dir)
	return &wire.XattrSupport{User: user, ACLs: acls, Privileged: os.Geteuid() == 0}
}
