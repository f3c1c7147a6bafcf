package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/transfer/wire"
)

// sparseBlock is the granularity at which all-zero data is left as a hole.
const sparseBlock = 4096

// writeSparse writes p at off, turning all-zero blocks into holes
// (punched, so whatever a resumed or seeded partial file held there is
// gone too); where holes cannot be punched it writes the zeros.
func writeSparse(f *os.File, p []byte, off int64) (int, error) {
	var zero [sparseBlock]byte
	runStart, runZero := 0, false
	flush := func(end int) error {
		if end <= runStart {
			return nil
		}
		seg, at := p[runStart:end], off+int64(runStart)
		if runZero {
			err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, at, int64(len(seg)))
			if err == nil {
				return nil
			}
		}
		_, err := f.WriteAt(seg, at)
		return err
	}
	for i := 0; i < len(p); i += sparseBlock {
		j := min(i+sparseBlock, len(p))
		z := bytes.Equal(p[i:j], zero[:j-i])
		if i == 0 {
			runZero = z
			continue
		}
		if z != runZero {
			if err := flush(i); err != nil {
				return 0, err
			}
			runStart, runZero = i, z
		}
	}
	if err := flush(len(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// record appends a verified chunk to the journal. A lost record only
// costs a resend, so it is not flushed.
func (rf *rfile) record(idx uint64, dg hashtree.Digest) {
	if rf.journal == nil {
		return
	}
	var b [8 + len(hashtree.Digest{})]byte
	rf.journal.Write(appendRecord(b[:0], idx, dg, rf.spec.Share > 0))
}

// Adopt records chunks that a resumed or seeded partial file already
// holds, where the sender's digest matches the one recomputed from disk;
// it returns the indexes that must be sent after all. With leafSize > 0
// (valid for the file's chunks) it also returns the leaf digests of those
// missing chunks the partial file holds old bytes of, for the sender to
// send only the leaves that differ (WritePatch); up to
// wire.MaxPatchLeafBytes of digests, the rest are sent whole.
func (r *Receiver) Adopt(fid uint64, chunks []wire.AdoptChunk, leafSize int64) ([]int64, []wire.ChunkLeaves, error) {
	r.mu.Lock()
	rf := r.files[fid]
	r.mu.Unlock()
	if rf == nil {
		return nil, nil, fmt.Errorf("adopt for unknown file %d", fid)
	}
	var missing, old []int64
	patches := leafSize != 0 && hashtree.ValidLeafSize(leafSize, rf.spec.ChunkSize) == nil && rf.spec.Shares == 0
	rf.mu.Lock()
	for _, c := range chunks {
		d, err := hashtree.ParseDigest(c.Digest)
		h, ok := rf.have[c.Index]
		if err == nil && ok && h == d && rf.tree.Set(c.Index, d) == nil {
			continue
		}
		missing = append(missing, c.Index)
		if ok && patches {
			old = append(old, c.Index) // the partial file holds old bytes of it
		}
	}
	if patches && rf.failed == "" && rf.f != nil {
		rf.leafSize = leafSize
	} else {
		old = nil
	}
	rf.mu.Unlock()
	// Hashed without the lock: chunks of the file not offered for
	// adoption are being written meanwhile, none of these.
	return missing, r.leaves(rf, old, leafSize), nil
}

// leaves returns the leaf digests of the chunks idx of rf (held in its
// partial file), within the budget of wire.MaxPatchLeafBytes.
func (r *Receiver) leaves(rf *rfile, idx []int64, leafSize int64) []wire.ChunkLeaves {
	if len(idx) == 0 {
		return nil
	}
	var out []wire.ChunkLeaves
	sp := rf.spec
	buf := make([]byte, sp.ChunkSize)
	budget := wire.MaxPatchLeafBytes
	for _, i := range idx {
		if i < 0 || i >= rf.tree.Len() {
			continue
		}
		off := i * sp.ChunkSize
		l := min(sp.ChunkSize, sp.Size-off)
		cost := hashtree.NumLeaves(l, leafSize) * len(hashtree.Digest{})
		if cost > budget {
			break
		}
		if _, err := rf.f.ReadAt(buf[:l], off); err != nil && !errors.Is(err, io.EOF) {
			continue
		}
		dgs := hashtree.LeafDigests(buf[:l], off, leafSize)
		flat := make([]byte, 0, cost)
		for _, d := range dgs {
			flat = append(flat, d[:]...)
		}
		out = append(out, wire.ChunkLeaves{Index: i, Digests: flat})
		budget -= cost
	}
	return out
}

// lookup returns the open file fid, or nil and why not: the reason it
// failed, or that it is unknown (what names the message for it).
func (r *Receiver) lookup(fid uint64, what string) (*rfile, string) {
	r.mu.Lock()
	rf := r.files[fid]
	reason := r.failed[fid]
	r.mu.Unlock()
	if rf == nil && reason == "" {
		reason = fmt.Sprintf("%s unknown file %d", what, fid)
	}
	return rf, reason
}

// WritePatch assembles chunk p.Index from the old bytes of the partial
// file and the leaves that differ (their bytes in data), checks the
// result against the chunk's digest (always: the old bytes are not the
// sender's), writes the leaves and records the chunk, as WriteChunk does.
func (r *Receiver) WritePatch(p wire.Patch, data []byte) (byte, string) {
	rf, reason := r.lookup(p.FID, "chunk for")
	if rf == nil {
		return wire.AckFailed, reason
	}
	sp := rf.spec
	rf.mu.Lock()
	leafSize := rf.leafSize
	rf.mu.Unlock()
	n := hashtree.NumChunks(sp.Size, sp.ChunkSize)
	if leafSize == 0 || p.LeafSize != leafSize || p.Index >= uint64(n) || p.Off != int64(p.Index)*sp.ChunkSize {
		msg := fmt.Sprintf("write %s: patch of chunk %d does not fit the file", sp.Path, p.Index)
		r.fail(p.FID, rf, msg)
		return wire.AckFailed, msg
	}
	chunk := make([]byte, min(sp.ChunkSize, sp.Size-p.Off))
	if _, err := rf.f.ReadAt(chunk, p.Off); err != nil && !errors.Is(err, io.EOF) {
		return r.ioFailed(p.FID, rf, fsroot.Describe("read", sp.Path, err))
	}
	if err := hashtree.PatchLeaves(chunk, leafSize, p.Leaves, data); err != nil {
		msg := fmt.Sprintf("write %s: patch of chunk %d: %v", sp.Path, p.Index, err)
		r.fail(p.FID, rf, msg)
		return wire.AckFailed, msg
	}
	if got := hashtree.ChunkDigest(chunk, p.Off, sp.Size, sp.ChunkSize); got != p.Digest {
		r.m.VerifyFailure()
		return wire.AckMismatch, fmt.Sprintf("chunk %d of %s failed BLAKE3 verification", p.Index, sp.Path)
	}
	for _, i := range p.Leaves {
		lo, hi := hashtree.LeafSpan(i, leafSize, int64(len(chunk)))
		if status, msg := r.writeAt(p.FID, rf, chunk[lo:hi], p.Off+lo); status != wire.AckOK {
			return status, msg
		}
	}
	return r.settleChunk(rf, p.Index, p.Digest, int64(len(data)))
}

// haveRanges lists the resumable chunk indexes as [first, last] ranges.
func (rf *rfile) haveRanges() [][2]int64 {
	if len(rf.have) == 0 {
		return nil
	}
	idx := make([]int64, 0, len(rf.have))
	for i := range rf.have {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	var out [][2]int64
	for _, i := range idx {
		if n := len(out); n > 0 && out[n-1][1] == i-1 {
			out[n-1][1] = i
			continue
		}
		out = append(out, [2]int64{i, i})
	}
	return out
}

// fail gives up on a file: its partial file is removed, so nothing is left
// behind, and later chunks of it are refused with the same reason.
func (r *Receiver) fail(fid uint64, rf *rfile, msg string) {
	r.mu.Lock()
	if r.files[fid] == rf {
		delete(r.files, fid)
		r.failed[fid] = msg
	}
	r.mu.Unlock()
	rf.mu.Lock()
	if rf.failed == "" {
		rf.failed = msg
		r.discard(rf)
	}
	rf.mu.Unlock()
}

func (r *Receiver) WriteChunk(fid, idx uint64, off int64, p []byte, dg hashtree.Digest, verify bool) (byte, string) {
	rf, reason := r.lookup(fid, "chunk for")
	if rf == nil {
		return wire.AckFailed, reason
	}
	sp := rf.spec
	n := hashtree.NumChunks(sp.Size, sp.ChunkSize)
	want := sp.ChunkSize
	if int64(idx) == n-1 {
		want = sp.Size - int64(idx)*sp.ChunkSize
	}
	if int64(idx) >= n || off != int64(idx)*sp.ChunkSize || int64(len(p)) != want {
		msg := fmt.Sprintf("write %s: chunk %d does not fit the file", sp.Path, idx)
		r.fail(fid, rf, msg)
		return wire.AckFailed, msg
	}
	if verify {
		if got := hashtree.ChunkDigest(p, off, sp.Size, sp.ChunkSize); got != dg {
			r.m.VerifyFailure()
			return wire.AckMismatch, fmt.Sprintf("chunk %d of %s failed BLAKE3 verification", idx, sp.Path)
		}
	}
	if len(p) > 0 {
		if status, msg := r.writeAt(fid, rf, p, off); status != wire.AckOK {
			return status, msg
		}
	}
	return r.settleChunk(rf, idx, dg, int64(len(p)))
}

// writeAt writes verified bytes p of rf at off (leaving holes for zeros
// in a sparse file).
func (r *Receiver) writeAt(fid uint64, rf *rfile, p []byte, off int64) (byte, string) {
	sp := rf.spec
	write := rf.f.WriteAt
	if sp.Sparse {
		write = func(b []byte, o int64) (int, error) { return writeSparse(rf.f, b, o) }
	}
	if _, err := write(p, off); err != nil {
		return r.ioFailed(fid, rf, fsroot.Describe("write", sp.Path, err))
	}
	return wire.AckOK, ""
}

// ioFailed fails rf for an I/O error (msg), unless another chunk failed
// first and closed the file: its reason (say, the disk is full) is the
// one to report.
func (r *Receiver) ioFailed(fid uint64, rf *rfile, msg string) (byte, string) {
	rf.mu.Lock()
	first := rf.failed
	rf.mu.Unlock()
	if first != "" {
		return wire.AckFailed, first
	}
	r.fail(fid, rf, msg)
	return wire.AckFailed, msg
}

// settleChunk records chunk idx of rf, written and verified (received bytes
// of it crossed the network), in the tree and the journal.
func (r *Receiver) settleChunk(rf *rfile, idx uint64, dg hashtree.Digest, received int64) (byte, string) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.failed != "" {
		return wire.AckFailed, rf.failed
	}
	if err := rf.tree.Set(int64(idx), dg); err != nil {
		return wire.AckFailed, fmt.Sprintf("write %s: %v", rf.spec.Path, err)
	}
	rf.record(idx, dg)
	r.m.AddBytes(r.transport, metrics.Received, received)
	return wire.AckOK, ""
}
