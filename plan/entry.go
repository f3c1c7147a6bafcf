// Package plan turns two directory trees into the work a transfer must do.
// It walks the source and the destination as sorted streams, diffs them with
// a merge join (so memory does not grow with the size of the tree), and cuts
// large files into chunks.
package plan

import (
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// Type is the kind of a tree entry: the one lstat gives (fsroot.Type).
// Other file types (devices, sockets, fifos) are TypeOther, with Special
// saying which; the diff hands them on as OpSkip "unsupported", and the
// sender recreates them when asked to (--specials).
type Type = fsroot.Type

// Entry types.
const (
	TypeFile    = fsroot.TypeFile
	TypeDir     = fsroot.TypeDir
	TypeSymlink = fsroot.TypeSymlink
	TypeOther   = fsroot.TypeOther
)

// Entry is one node of a tree, relative to the tree's top.
type Entry struct {
	Path    string // slash-separated, relative, never empty
	Type    Type
	Size    int64
	Mode    uint32 // permission bits (07777)
	MtimeNs int64
	// CtimeNs is the status change time a local walk saw (0 where the
	// lister does not say, as a peer's listing): a reader can tell from it
	// that a file changed since it was listed, even if its mtime was set
	// back. It is not compared by the diff and does not cross the wire.
	CtimeNs int64  `json:"-"`
	Target  string // symlink target, verbatim
	Digest  []byte // BLAKE3 of the content, when the lister was asked for it
	Ino     uint64 // inode, for hard-link detection on the source side
	Dev     uint64
	Nlink   uint64
	Blocks  int64 // allocated 512-byte blocks (sparse detection on the source side)
	// Uid and Gid are the numeric owner and group; Special says what a
	// TypeOther is (fifo, socket, device) and Rdev a device's number.
	Uid     uint32
	Gid     uint32
	Special fsroot.Special
	Rdev    uint64
	// Err, set by a walk, says why the entry could not be read: for a
	// directory, why its contents could not be listed (the walk yields
	// nothing beneath it); for a symlink, why its target could not be
	// read. Diff neither compares nor deletes anything beneath such a
	// directory at the other side, and reports each such entry once.
	Err string
}

// Compare orders paths the way a depth-first walk with children sorted by
// name visits them: component by component, bytewise. It is the order every
// lister must produce and the diff relies on.
func Compare(a, b string) int {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		// '/' sorts before every byte a name can contain.
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// Join joins a directory path and a name; an empty dir means the top.
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Base returns the last component of a slash path.
func Base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Dir returns all but the last component of a slash path ("" for the top).
func Dir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// IsInternal reports whether name is one of xfer's own temporary files
// (partial transfers and their journals), which listers never report:
// exactly ".xfer-" then 16 lowercase hexadecimal digits then ".part" or
// ".journal". Any other name, even one starting with ".xfer-", is a user's
// file like any other.
func IsInternal(name string) bool {
	return IsTempName(name, ".part") || IsTempName(name, ".journal")
}

// TreeIDFile is the file at the root of a tree served to a cluster that
// holds the tree's identity (internal/membership). It belongs to the
// tree, not to its contents: a walk of the root never reports it, so a
// sync of the root neither copies it nor deletes the destination's.
const TreeIDFile = ".xfer-tree-id"

// TempPrefix starts the names of xfer's partial files and journals.
const TempPrefix = ".xfer-"

// TempHexLen is the number of hexadecimal digits in the name of a partial
// file or journal.
const TempHexLen = 16

// IsTempName reports whether name is ".xfer-<16 lowercase hex><suffix>".
func IsTempName(name, suffix string) bool {
	hex, ok := strings.CutPrefix(name, TempPrefix)
	if !ok {
		return false
	}
	hex, ok = strings.CutSuffix(hex, suffix)
	if !ok || len(hex) != TempHexLen {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
