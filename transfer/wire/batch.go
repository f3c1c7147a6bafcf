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
}

// Flags of a small file in a batch.
const (
	smallReplaceDir = 1 << iota
	smallSparse
)

func AppendSmall(e *Enc, f *SmallFile) {
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
	e.U8(flags)
	e.Raw(f.Digest[:])
	e.Blob(f.Data)
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
	return f
}
