package receive

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// create makes the partial file for sp, with its journal, locked against
// a second writer, and takes up what an interrupted transfer of the same
// source version left (see journal.go).
func (r *Receiver) create(sp wire.FileSpec) (*rfile, string) {
	if dir := plan.Dir(sp.Path); dir != "" {
		if err := r.mkdirParents(dir); err != nil {
			return nil, fsroot.Describe("mkdir", dir, err)
		}
	}
	failed := func(err error) string {
		if errors.Is(err, errBusy) {
			return fmt.Sprintf("write %s: another transfer is writing this file", sp.Path)
		}
		return fsroot.Describe("create", sp.Path, err)
	}
	split := sp.Shares > 0
	rf := &rfile{spec: sp, jname: journalName(sp.Path), tree: hashtree.NewTree(sp.Size, sp.ChunkSize)}
	if sp.Share > 0 {
		rf.jname = ShareJournalName(sp.Path, sp.Share-1)
	}
	j, err := r.openLocked(rf.jname, unix.LOCK_EX)
	if err != nil {
		return nil, failed(err)
	}
	rf.journal = j
	hdr := journalHeader{V: journalVersion, Name: plan.Base(sp.Path), Size: sp.Size, MtimeNs: sp.MtimeNs,
		Chunk: sp.ChunkSize, Mode: sp.Mode, Digests: sp.Share > 0}
	if split {
		// Shares of a split file write side by side (shared lock); the
		// final pass needs the file to itself.
		how := unix.LOCK_EX
		if sp.Share > 0 {
			how = unix.LOCK_SH
		}
		rf.part = SplitPartName(sp.Path)
		if rf.f, err = r.openLocked(rf.part, how); err != nil {
			r.discard(rf)
			return nil, failed(err)
		}
	}
	// Resume from the journal of an interrupted transfer of the same
	// source version: the chunks it lists are hashed again from disk, so
	// only data that is really there counts.
	recs, oldPart, keep, _, ok := r.readJournal(j, rf.jname, hdr)
	if ok && !split {
		if f, err := r.openOwn(oldPart, os.O_RDWR); err == nil {
			rf.f, rf.part = f, oldPart
		}
	}
	resumed := false
	if ok && rf.f != nil {
		// Drop a torn record at the tail (and a share's park mark: it
		// parks again when done), and keep appending after it.
		info, err := fsroot.InfoFromFile(rf.f)
		if err == nil && info.Size == sp.Size && j.Truncate(keep) == nil {
			if _, err := j.Seek(0, io.SeekEnd); err == nil {
				rf.have = r.rehash(rf, hdr, recs)
				resumed = true
			}
		}
	}
	if !split && !resumed {
		if rf.f != nil {
			rf.f.Close() // the journal's partial file, not resumed
			rf.f, rf.part = nil, ""
		}
		if oldPart != "" {
			r.root.Remove(oldPart) // what an earlier transfer left: unlinked, never written
		}
		for _, n := range legacyNames(sp.Path, 0) {
			r.root.Remove(n)
		}
		f, name, err := r.createPart(sp.Path, j, hdr)
		if err != nil {
			r.discard(rf)
			return nil, failed(err)
		}
		rf.f, rf.part = f, name
	}
	hdr.Part = plan.Base(rf.part)
	if split && sp.Share == 0 {
		// The final pass of a split file: what the shares wrote.
		shdr := hdr
		shdr.Digests = true
		for k := range sp.Shares {
			r.shareChunks(rf, ShareJournalName(sp.Path, k), shdr)
		}
		for i := range rf.done {
			delete(rf.have, i)
		}
		if !resumed {
			for _, n := range legacyNames(sp.Path, sp.Shares) {
				r.root.Remove(n)
			}
		}
		if !resumed && (rf.have != nil || rf.done != nil) {
			if err := writeHeader(j, hdr); err != nil {
				r.discard(rf)
				return nil, fsroot.Describe("create", sp.Path, err)
			}
			if rf.have == nil {
				rf.have = map[int64]hashtree.Digest{} // resuming: keep the data
			}
		}
	}
	if rf.have == nil && sp.Delta && !split {
		rf.have = r.seed(rf, hdr)
	}
	if rf.have == nil {
		f := rf.f
		if sp.Share > 0 {
			// Other shares may be writing already: never cut the file
			// short, only give it its size.
			if info, serr := fsroot.InfoFromFile(f); serr != nil || info.Size != sp.Size {
				err = f.Truncate(sp.Size)
			}
		} else {
			err = f.Truncate(0)
			if err == nil {
				err = f.Truncate(sp.Size)
			}
		}
		if err == nil {
			err = writeHeader(j, hdr)
		}
		if err != nil {
			r.discard(rf)
			return nil, fsroot.Describe("create", sp.Path, err)
		}
	}
	return rf, ""
}

// shareChunks takes what the journal name of one share of a split file
// lists: trusted into rf.done (and the tree) when the share parked, that
// is flushed its data and journal; else re-hashed from the partial file
// into rf.have, for the sender to adopt what matches.
func (r *Receiver) shareChunks(rf *rfile, name string, hdr journalHeader) {
	j, err := r.openOwn(name, os.O_RDONLY)
	if err != nil {
		return
	}
	defer j.Close()
	recs, part, _, parked, ok := r.readJournal(j, name, hdr)
	if !ok || part != rf.part {
		return
	}
	if info, err := fsroot.InfoFromFile(rf.f); err != nil || info.Size != hdr.Size {
		return
	}
	if !parked {
		for i, d := range r.rehash(rf, hdr, recs) {
			if rf.have == nil {
				rf.have = map[int64]hashtree.Digest{}
			}
			rf.have[i] = d
		}
		return
	}
	for _, rec := range recs {
		if err := rf.tree.Set(rec.idx, rec.dg); err != nil {
			continue
		}
		if rf.done == nil {
			rf.done = map[int64]hashtree.Digest{}
		}
		rf.done[rec.idx] = rec.dg
	}
}

// rehash recomputes, from the partial file, the digests of the chunks
// that recs list: only data that is really there counts.
func (r *Receiver) rehash(rf *rfile, hdr journalHeader, recs []journalRec) map[int64]hashtree.Digest {
	have := map[int64]hashtree.Digest{}
	buf := make([]byte, hdr.Chunk)
	for _, rec := range recs {
		if _, dup := have[rec.idx]; dup {
			continue
		}
		off := rec.idx * hdr.Chunk
		l := min(hdr.Chunk, hdr.Size-off)
		if _, err := rf.f.ReadAt(buf[:l], off); err != nil && !errors.Is(err, io.EOF) {
			continue
		}
		have[rec.idx] = hashtree.ChunkDigest(buf[:l], off, hdr.Size, hdr.Chunk)
	}
	return have
}

// seed fills the partial file from the file already at the target path
// (copy_file_range: a reflink where the file system can) and hashes the
// chunks it now holds, for the sender to adopt those that did not change.
func (r *Receiver) seed(rf *rfile, hdr journalHeader) map[int64]hashtree.Digest {
	// O_NONBLOCK: a FIFO swapped in at the target must not hang the
	// session in open(2); it is then refused as not a regular file.
	old, err := r.root.OpenFile(rf.spec.Path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer old.Close()
	info, err := fsroot.InfoFromFile(old)
	if err != nil || info.Type != fsroot.TypeFile || info.Size == 0 {
		return nil
	}
	if err := rf.f.Truncate(0); err != nil {
		return nil
	}
	n := min(info.Size, hdr.Size)
	var done int64
	for done < n {
		off := done
		k, err := unix.CopyFileRange(int(old.Fd()), &off, int(rf.f.Fd()), &off, int(n-done), 0)
		if err != nil || k == 0 {
			break
		}
		done += int64(k)
	}
	if done < n {
		// No copy_file_range here: plain copy.
		if _, err := old.Seek(done, io.SeekStart); err != nil {
			return nil
		}
		if _, err := rf.f.Seek(done, io.SeekStart); err != nil {
			return nil
		}
		if _, err := io.CopyN(rf.f, old, n-done); err != nil {
			return nil
		}
	}
	if rf.f.Truncate(hdr.Size) != nil || writeHeader(rf.journal, hdr) != nil {
		return nil
	}
	have := map[int64]hashtree.Digest{}
	buf := make([]byte, hdr.Chunk)
	// Every chunk holding old bytes counts, the one the old end cuts too
	// (its leaves before the cut may match).
	for idx := int64(0); idx*hdr.Chunk < n; idx++ {
		off := idx * hdr.Chunk
		l := min(hdr.Chunk, hdr.Size-off)
		if _, err := rf.f.ReadAt(buf[:l], off); err != nil && !errors.Is(err, io.EOF) {
			break
		}
		have[idx] = hashtree.ChunkDigest(buf[:l], off, hdr.Size, hdr.Chunk)
	}
	return have
}

// discard drops a file for good: partial file and journal (a share of a
// split file drops only its own journal: the partial file is shared).
func (r *Receiver) discard(rf *rfile) {
	if rf.f != nil {
		rf.f.Close()
	}
	if rf.spec.Share == 0 {
		r.dropSplitLeftovers(rf.spec.Path, rf.spec.Shares)
		if rf.part != "" {
			r.root.Remove(rf.part)
		}
	}
	r.dropJournal(rf)
}

// dropSplitLeftovers removes the share journals of target p (shares of
// them known), and those an earlier, interrupted cluster run left when it
// split p differently (or at all, where this run did not): nothing of
// xfer's stays beside a file once it is in place. One lstat finds whether
// an earlier split left anything.
func (r *Receiver) dropSplitLeftovers(p string, shares int) {
	for k := range shares {
		r.root.Remove(ShareJournalName(p, k))
	}
	if shares == 0 {
		if err := r.root.Remove(SplitPartName(p)); err != nil {
			if _, serr := r.root.Lstat(ShareJournalName(p, 0)); serr != nil {
				return
			}
		}
	}
	for k := shares; k < wire.MaxShards; k++ {
		if r.root.Remove(ShareJournalName(p, k)) != nil && k >= shares+8 {
			// Shares are numbered from 0; a run of missing ones ends them.
			return
		}
	}
}

// dropJournal removes the journal of rf, then lets go of its lock.
func (r *Receiver) dropJournal(rf *rfile) {
	if rf.journal == nil {
		return
	}
	r.root.Remove(rf.jname)
	rf.journal.Close()
	rf.journal = nil
}

// keep closes a file whose transfer was interrupted, leaving its partial
// file and journal for the next run to resume.
func (r *Receiver) keep(rf *rfile) {
	if rf.f != nil {
		rf.f.Close()
	}
	if rf.journal != nil {
		rf.journal.Close()
	}
}
