package plan

import "github.com/xfer-io/xfer/internal/hashtree"

// SplitMinChunks: a file of at least this many chunks per share is split
// over all shares of a cluster transfer, chunk ranges side by side in one
// partial file; smaller files move whole through one share.
const SplitMinChunks = 4

// ShareFileCost is what a file weighs in the balance beyond its bytes:
// per-file work (open, rename, metadata) that makes many small files as
// heavy as fewer large ones.
const ShareFileCost = 32 << 10

// Shares is the share policy of a cluster transfer: which of the source's
// files a share carries, and which large files all shares split between
// them. Every share walks the same source and decides alike, so that no
// file is carried twice and none is forgotten; the final pass decides
// alike too, to find the files the shares split. A Shares is used by one
// goroutine, on the ops of one walk, in the walk's order.
type Shares struct {
	// Index and Count are this run's share; Count 0 is a run that is no
	// share (a whole transfer, or a cluster's final pass).
	Index, Count int
	// Split, in a final pass, is the number of shares that ran before it
	// (0 or 1: none, nothing was split).
	Split int
	// ChunkSize is the transfer's chunk size.
	ChunkSize int64
	// HardLinks and Delta are the transfer's --hard-links and --delta: a
	// multiply-linked file is the final pass's, and a changed file that
	// --delta updates in place moves whole.
	HardLinks, Delta bool

	load []int64 // the weight assigned to each share so far
}

// Mine decides, in a share's run, whether op is this share's to carry
// out: a regular file to create or update that the balance assigns to it,
// or its range of a split file. Everything else (directories, symlinks,
// attributes, deletions, files that are hard links) is the final pass's.
// Every file of the source counts towards the balance, changed or not, so
// that shares which list the destination at different moments agree.
func (p *Shares) Mine(op Op) bool {
	s := op.Src
	if s.Type != TypeFile || op.Kind == OpDelete {
		return false
	}
	if p.load == nil {
		p.load = make([]int64, p.Count)
	}
	k := 0
	for i, l := range p.load {
		if l < p.load[k] {
			k = i
		}
	}
	if p.Splits(op) {
		// Every share carries its range of the file's chunks.
		for i := range p.load {
			p.load[i] += s.Size/int64(p.Count) + ShareFileCost
		}
		lo, hi := p.Range(hashtree.NumChunks(s.Size, p.ChunkSize))
		return op.Kind == OpPut && hi > lo
	}
	p.load[k] += s.Size + ShareFileCost
	if k != p.Index || op.Kind != OpPut {
		return false
	}
	return !(p.HardLinks && s.Nlink > 1)
}

// Splits reports whether the large file of op is split over the shares
// (in a share, or in the final pass that finishes it). The decision rests
// on the source entry and on the destination's file under its final
// name, which no share changes.
func (p *Shares) Splits(op Op) bool {
	k := p.Split
	if p.Count > 0 {
		k = p.Count
	}
	s := op.Src
	switch {
	case k < 2 || s.Type != TypeFile || (p.HardLinks && s.Nlink > 1):
		return false
	case hashtree.NumChunks(s.Size, p.ChunkSize) < SplitMinChunks*int64(k):
		return false
	}
	return !DeltaUpdate(op, p.Delta, p.ChunkSize)
}

// FinishesSplit reports whether this is the final pass of a cluster
// transfer finishing a file that its shares split between them.
func (p *Shares) FinishesSplit(op Op) bool {
	return p.Count == 0 && p.Split > 1 && p.Splits(op)
}

// Range is this share's range [lo, hi) of a split file's n chunks.
func (p *Shares) Range(n int64) (lo, hi int64) {
	return int64(p.Index) * n / int64(p.Count), int64(p.Index+1) * n / int64(p.Count)
}

// DeltaUpdate reports whether the changed file of op is updated with
// --delta (delta): the destination's old version, a regular file of at
// least one chunk, is seeded into the partial file.
func DeltaUpdate(op Op, delta bool, chunkSize int64) bool {
	return delta && op.Dst != nil && op.Dst.Type == TypeFile && op.Dst.Size >= chunkSize
}
