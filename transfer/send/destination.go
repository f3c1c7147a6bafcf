package send

import (
	"context"
	"os"

	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Destination is where the engine writes: a tree on this machine (Local,
// the receiver called in process) or a peer over a session (Remote). Both
// end in the same receiver (transfer/receive), which checks, writes and
// commits; the conformance suite (destination_test.go) holds them to the
// same behaviour.
type Destination interface {
	// List walks the tree beneath path, with the BLAKE3 of each regular
	// file if checksum is set; a path with nothing there lists empty.
	List(ctx context.Context, path string, checksum bool) plan.Lister
	// ListDir lists the directory at path alone (its direct entries,
	// nothing beneath them); a path with nothing there lists empty.
	ListDir(ctx context.Context, path string) plan.Lister
	// Stat describes what is at path (a symlink with its target), or
	// returns nil if nothing is there.
	Stat(ctx context.Context, path string) (*plan.Entry, error)
	// Hash is the BLAKE3 of the regular file at path.
	Hash(ctx context.Context, path string) (hashtree.Digest, error)
	// Mkroot creates the run's destination directory path (and the tree
	// itself, for a local destination that does not exist yet), and takes
	// its run lock if lock is set.
	Mkroot(ctx context.Context, path string, lock bool) error
	// Meta carries out metadata operations in order (mkdir, symlink,
	// link, delete, setattrs, special), with one verdict per operation: "" for
	// done, or why not.
	Meta(ctx context.Context, ops []wire.MetaOp) ([]string, error)
	// Xattrs makes the extended attributes within scope of each entry in
	// sets match the set (-X, -A), with one result per set: changed or
	// not, what the destination could not keep, or why it failed.
	Xattrs(ctx context.Context, scope wire.XattrScope, sets []wire.XattrSet) ([]wire.XattrResult, error)
	// Open announces a large file and returns the writer that takes its
	// chunks. A file the destination refuses (read-only, no space, busy)
	// is a *FileError; any other error ends the run.
	Open(ctx context.Context, spec wire.FileSpec) (FileWriter, error)
	// Finish applies the directory attributes held back until the files
	// beneath were written, and returns how many directories the
	// destination created on its own on the way to files (a share of a
	// cluster transfer sends no mkdirs), and what of the owners, groups
	// and special files asked for it could not keep (nil: everything).
	Finish(ctx context.Context) (int64, *wire.OwnerReport, error)
	// XattrSupport is what the destination said in the handshake it can
	// store of extended attributes; nil when it did not say (each entry's
	// result tells).
	XattrSupport() *wire.XattrSupport
	// Lanes are the paths chunks and small-file batches travel, one per
	// data stream; the engine runs a sender on each.
	Lanes() []Lane
	// Verifies says whether the destination checks chunk and file
	// digests on arrival: a peer whose session verifies (negotiated in
	// its handshake); never an in-process destination.
	Verifies() bool
	// InProcess says whether chunks are written in this process: they are
	// then handed over from the source's mapping; a peer is sent them
	// from the file (zero copy where the transport can).
	InProcess() bool
	// Gone reports whether the destination went away (a peer's session
	// ended, or is ending because a data stream broke): what fails now
	// fails for that reason, not the file's.
	Gone() bool
}

// FileWriter takes the chunks of one file announced with Open, and ends
// its transfer with exactly one of Commit, Park or Abort.
type FileWriter interface {
	// Resume is what the destination already holds of the file: have,
	// ranges [first, last] of chunk indexes found in the partial file of
	// an interrupted transfer of the same source version (the sender
	// hashes its own and offers those to Adopt); done, chunks a parked
	// share of a split file wrote and verified (a final pass takes them as
	// they are).
	Resume() (have [][2]int64, done []wire.AdoptChunk)
	// Adopt offers chunks of the partial file with the sender's digests;
	// the destination keeps those whose data matches and returns the
	// indexes of those that must be sent after all. With leafSize > 0 it
	// also returns the leaf digests of missing chunks it holds old bytes
	// of (none from a destination that does not offer them), for
	// WritePatch; the other missing chunks go whole with WriteChunk.
	Adopt(ctx context.Context, chunks []wire.AdoptChunk, leafSize int64) (missing []int64, leaves []wire.ChunkLeaves, err error)
	// WriteChunk sends chunk c over lane l (acquired by the caller); cb
	// gets the destination's verdict (wire.AckOK, AckMismatch, AckFailed
	// with why), possibly on another goroutine, and must not block.
	WriteChunk(l Lane, c Chunk, cb func(status byte, msg string)) error
	// WritePatch sends a chunk whose leaf digests Adopt returned as the
	// leaves that differ (p.Leaves, their bytes in data) over lane l
	// (acquired by the caller); cb is WriteChunk's.
	WritePatch(l Lane, p wire.Patch, data []byte, cb func(status byte, msg string)) error
	// Commit finishes the file: the destination checks digest, the
	// sender's whole-file BLAKE3 ("" when the sender did not hash),
	// sets its attributes, makes its data durable and renames it into
	// place. A file that fails this is a *FileError.
	Commit(ctx context.Context, digest string) error
	// Park ends a share's range of a split file: its data is made
	// durable and kept, with the share's journal, for the final pass.
	Park(ctx context.Context) error
	// Abort drops the partial file (the sender gave up on it).
	Abort(ctx context.Context) error
}

// Chunk is one chunk of a large file on its way: its data in Data, or Len
// bytes of File at Off (sent from the file, zero copy where the transport
// can).
type Chunk struct {
	Index  uint64
	Off    int64
	Len    int
	Verify bool            // the destination checks Digest
	Digest hashtree.Digest // of the chunk's data
	Data   []byte          // nil: read from File
	File   *os.File
}

// Lane carries chunks and batches to the destination; transfer/session's
// Lane is one, and the receiver called in process another.
type Lane interface {
	// Acquire waits for room on the lane (its window of chunks in
	// flight); every Acquire is matched by one Release.
	Acquire(ctx context.Context) error
	// Release frees the room taken by Acquire.
	Release()
	// SendChunk sends chunk idx of file fid (data, or n bytes of f at
	// off); cb gets the verdict and must not block.
	SendChunk(fid, idx uint64, off int64, verify bool, digest hashtree.Digest, data []byte, f *os.File, n int, cb func(status byte, msg string)) error
	// SendPatch sends a chunk as the leaves of it that differ (p, their
	// bytes in data); cb gets the verdict and must not block.
	SendPatch(p wire.Patch, data []byte, cb func(status byte, msg string)) error
	// SendBatch sends a small-file batch of count files; cb gets one
	// verdict per file ("" for written) or the batch's error.
	SendBatch(count int, payload []byte, cb func(errs []string, err error)) error
}

// file is what both destinations' writers know of a file: its id on the
// lanes, and what Open said the destination already holds.
type file struct {
	fid  uint64
	have [][2]int64
	done []wire.AdoptChunk
}

// Resume implements FileWriter.
func (f *file) Resume() ([][2]int64, []wire.AdoptChunk) { return f.have, f.done }

// WriteChunk implements FileWriter: the chunk goes out on l under the
// file's id.
func (f *file) WriteChunk(l Lane, c Chunk, cb func(byte, string)) error {
	return l.SendChunk(f.fid, c.Index, c.Off, c.Verify, c.Digest, c.Data, c.File, c.Len, cb)
}

// WritePatch implements FileWriter: the patch goes out on l under the
// file's id.
func (f *file) WritePatch(l Lane, p wire.Patch, data []byte, cb func(byte, string)) error {
	p.FID = f.fid
	return l.SendPatch(p, data, cb)
}

// FileError is the destination's refusal of one file, saying why; the run
// goes on without the file and ends with exit code 1.
type FileError struct{ Msg string }

func (e *FileError) Error() string { return e.Msg }

// fileErr is the error for a per-file verdict msg: nil for "".
func fileErr(msg string) error {
	if msg == "" {
		return nil
	}
	return &FileError{Msg: msg}
}
