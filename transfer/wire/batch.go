package wire

import "github.com/xfer-io/xfer/internal/hashtree"

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
	e.Blob(f.Data)
	at.Data, at.Len = len(e.Buf)-len(f.Data), len(f.Data)
	if o := f.Owner; o != nil {
		e.Uvar(uint64(o.Uid))
		e.Uvar(uint64(o.Gid))
		e.Str(o.User)
		e.Str(o.Group)
	}
	return at
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
