package wire

import (
	"errors"
	"slices"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// smallFile is one file of a batch.
type SmallFile struct {
	Path       string
	Size       int64
	Mode       uint32
	MtimeNs    int64
	ReplaceDir bool
	Sparse     bool // the source has holes: all-zero blocks stay holes
	Digest     hashtree.Digest
	Data       []byte
	Owner      *Owner // the owner and group the file is to have (nil: the receiver's)
}

// Flags of a small file in a batch.
const (
	smallReplaceDir = 1 << iota
	smallSparse
	smallOwner   // an owner follows the data
	smallNumeric // the owner is by number only
)

// SmallAt says where AppendSmall put a file's digest and data in the
// encoder's buffer, so that a sender may fill the digest in later.
type SmallAt struct {
	Digest int // offset of the 32-byte digest
	Data   int // offset of the data
	Len    int // length of the data
}

// AppendSmall appends f, one entry of a small-file batch, and returns where
// its digest and data are.
func AppendSmall(e *Enc, f *SmallFile) SmallAt {
	at, _ := AppendSmallFill(e, f, len(f.Data), func(dst []byte) error {
		copy(dst, f.Data)
		return nil
	})
	return at
}

// AppendSmallFill appends f as AppendSmall does, but with n bytes of data
// that fill writes straight into the encoder's buffer (f.Data is not
// used): a file read into its place in the batch is not copied again. If
// fill fails, the buffer is left as it was and its error returned.
func AppendSmallFill(e *Enc, f *SmallFile, n int, fill func(dst []byte) error) (SmallAt, error) {
	mark := len(e.Buf)
	e.Str(f.Path)
	e.Uvar(uint64(f.Mode))
	e.Svar(f.MtimeNs)
	var flags uint8
	if f.ReplaceDir {
		flags |= smallReplaceDir
	}
	if f.Sparse {
		flags |= smallSparse
	}
	if f.Owner != nil {
		flags |= smallOwner
		if f.Owner.Numeric {
			flags |= smallNumeric
		}
	}
	e.U8(flags)
	at := SmallAt{Digest: len(e.Buf)}
	e.Raw(f.Digest[:])
	e.Uvar(uint64(n))
	at.Data, at.Len = len(e.Buf), n
	e.Buf = slices.Grow(e.Buf, n)[:at.Data+n]
	if err := fill(e.Buf[at.Data:]); err != nil {
		e.Buf = e.Buf[:mark]
		return SmallAt{}, err
	}
	if o := f.Owner; o != nil {
		e.Uvar(uint64(o.Uid))
		e.Uvar(uint64(o.Gid))
		e.Str(o.User)
		e.Str(o.Group)
	}
	return at, nil
}

func ReadSmall(d *Dec) SmallFile {
	var f SmallFile
	f.Path = d.Str()
	f.Mode = uint32(d.Uvar())
	f.MtimeNs = d.Svar()
	flags := d.U8()
	f.ReplaceDir, f.Sparse = flags&smallReplaceDir != 0, flags&smallSparse != 0
	copy(f.Digest[:], d.Raw(32))
	f.Data = d.Blob()
	f.Size = int64(len(f.Data))
	if flags&smallOwner != 0 {
		f.Owner = &Owner{Uid: uint32(d.Uvar()), Gid: uint32(d.Uvar()), User: d.Str(), Group: d.Str(), Numeric: flags&smallNumeric != 0}
	}
	return f
}

// BatchCheck says how a receiver checks the files of a small-file batch
// against their digests.
type BatchCheck uint8

const (
	// BatchUnchecked: the files are not checked (a session that does not
	// verify; a local destination, which writes the very buffer that was
	// hashed).
	BatchUnchecked BatchCheck = iota
	// BatchPerFile: a file that fails its digest is refused, the others
	// land (a session that verifies, inside TLS).
	BatchPerFile
	// BatchWhole: the digests stand in for the message tag over the files'
	// data (BatchTagged), so a file that fails its digest means the batch
	// was altered on the way: nothing of it is written and the receiver
	// fails with ErrBatchAltered, as a tag that did not match would.
	BatchWhole
)

// ErrBatchAltered is the cause of a batch refused under BatchWhole.
var ErrBatchAltered = errors.New("a file of a small-file batch failed its BLAKE3 digest, which the message tag relies on")

// BatchTagged calls fn, in order, with the parts of a small-file batch's
// payload p that a session's message tag covers when the session checks
// every file against its digest (BatchWhole): all of p but the data of
// each entry, which its digest (covered) binds instead, so that the data
// is hashed once and not twice on each side. The lengths of the data are
// covered, so the parts fix where every entry begins. A payload that does
// not parse as whole entries has its unparsed rest covered as it is:
// sender and receiver, given the same bytes, cover the same parts. It
// decodes as ReadSmall does, without allocating.
func BatchTagged(p []byte, fn func(part []byte)) {
	if len(p) == 0 {
		return
	}
	d := Dec{Buf: p[1:]} // after the reserved byte
	start := 0           // the first byte not yet given to fn
	for len(d.Buf) > 0 {
		d.Blob() // path
		d.Uvar() // mode
		d.Svar() // mtime
		flags := d.U8()
		d.Raw(len(hashtree.Digest{}))
		data := d.Blob()
		if d.Err != nil {
			break
		}
		end := len(p) - len(d.Buf) // just past the data
		fn(p[start : end-len(data)])
		start = end
		if flags&smallOwner != 0 {
			d.Uvar()
			d.Uvar()
			d.Blob()
			d.Blob()
			if d.Err != nil {
				break
			}
		}
	}
	if start < len(p) {
		fn(p[start:])
	}
}
