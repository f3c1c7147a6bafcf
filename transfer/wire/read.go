package wire

// OpRead returns bytes of one regular file beneath the served root
// (`xfer cat`): Req.Path, and Req.Read for where and how much. It is a
// read, so a read-only export answers it; the path is confined like any
// other.
const OpRead = "read"

// MaxRead bounds ReadArgs.Count: the bytes one OpRead answers.
const MaxRead = 1 << 20

// ReadArgs are the arguments of OpRead: Count bytes (1 to MaxRead) from
// Offset (0 or more).
type ReadArgs struct {
	Offset int64 `json:"offset"`
	Count  int64 `json:"count"`
}

// ReadResult answers OpRead: the bytes read (fewer than asked only at the
// end of the file), the file's size when it was read, and whether Data
// reaches its end.
type ReadResult struct {
	Data []byte `json:"data,omitempty"`
	Size int64  `json:"size"`
	EOF  bool   `json:"eof,omitempty"`
}
