package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/xfer-io/xfer/transfer/wire"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/plan"
)

// receiver writes what a sender delivers into a tree: files land in hidden
// partial files beside their targets, every chunk is checked against its
// BLAKE3 digest before it is written, and a file is renamed into place only
// once its whole-file digest matches the sender's and its data is durable.
// One receiver serves one session; its root is shared with others.
type receiver struct {
	root     *fsroot.Root
	noFsync  bool
	readOnly bool
	// prefix is the export name that every path from the peer starts with
	// ("" when the server serves a single tree).
	prefix string
	// peer, when set, is what a server lets a peer make of its tree
	// (modes narrowed, no writes through hard links); nil in a local copy,
	// which keeps modes exactly as the source has them.
	peer *peerPolicy
	// within confines a ticket session to its destination directory
	// (beneath the root; "" for no confinement). Set before use.
	within string
	// m counts what arrives, labelled with the session's transport.
	m         *metrics.Metrics
	transport string
	// maxOpen bounds the large files held open at once (0: no bound), so
	// that one session cannot spend the server's file descriptors.
	maxOpen int

	mu     sync.Mutex
	files  map[uint64]*rfile
	failed map[uint64]string // files given up on, so late chunks get the reason
	dirs   []dirAttr         // directory attributes applied at finish
	// unlocked are read-only directories made writable for this run,
	// with their old modes (writable.go).
	unlocked []dirAttr
	// noTmpfile is set once the file system turned O_TMPFILE down;
	// updating while the last batch mostly replaced existing files.
	// made counts directories created on the way to arriving files.
	made      atomic.Int64
	noTmpfile atomic.Bool
	updating  atomic.Bool
}

type rfile struct {
	mu      sync.Mutex
	spec    wire.FileSpec
	f       *os.File
	part    string
	journal *os.File // indexes of chunks written and verified, for resume
	jname   string
	tree    *hashtree.Tree
	// have holds digests of chunks found in a partial file left by an
	// interrupted transfer, recomputed from the data on disk; the sender
	// adopts those that match its own.
	have map[int64]hashtree.Digest
	// done holds chunks a parked share of a split file wrote and verified
	// (final pass): already set in the tree, nothing to send or check.
	done   map[int64]hashtree.Digest
	failed string
}

type dirAttr struct {
	path    string
	mode    uint32
	mtimeNs int64
}

func newReceiver(root *fsroot.Root, noFsync, readOnly bool, prefix string) *receiver {
	return &receiver{root: root, noFsync: noFsync, readOnly: readOnly, prefix: prefix,
		files: map[uint64]*rfile{}, failed: map[uint64]string{}}
}

// rel turns a path from the peer into a path beneath the root, refusing
// what lies outside the directory a ticket session is confined to.
func (r *receiver) rel(p string) (string, error) {
	rel, err := stripExport(r.prefix, p)
	if err == nil && !beneathDir(rel, r.within) {
		return "", fmt.Errorf("path %q: %w", p, errOutsideTicket)
	}
	return rel, err
}

// stripExport removes the export name from the front of p and validates
// what remains.
func stripExport(prefix, p string) (string, error) {
	if err := wire.ValidRel(p); err != nil {
		return "", err
	}
	if prefix == "" {
		return p, nil
	}
	if p == prefix {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(p, prefix+"/"); ok {
		return rest, nil
	}
	return "", fmt.Errorf("path %q is outside export %q (a session uses one export)", p, prefix)
}

// digestAbandoned in a commit tells the receiver to drop the partial file.
const digestAbandoned = "abandoned"

// digestPark in a commit of a share of a split file tells the receiver to
// flush the partial file and keep it, with the share's journal, for the
// final pass.
const digestPark = "park"

// setMtime sets a file's mtime (and atime) through its descriptor:
// utimensat(fd, NULL, ...), i.e. futimens, with nanoseconds.
func setMtime(f *os.File, ns int64) error { return setMtimeFd(int(f.Fd()), ns) }

func setMtimeFd(fd int, ns int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// describe turns a file-system error into a short message naming the path.
func describe(op, p string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Sprintf("%s %s: no space left on device", op, p)
	}
	if errors.Is(err, fsroot.ErrEscape) {
		return fmt.Sprintf("%s %s: path escapes the export root (refused)", op, p)
	}
	return fmt.Sprintf("%s %s: %v", op, p, err)
}

func (r *receiver) open(specs []wire.FileSpec) ([]string, [][][2]int64, [][]wire.AdoptChunk) {
	errs := make([]string, len(specs))
	haves := make([][][2]int64, len(specs))
	var done [][]wire.AdoptChunk
	for i, sp := range specs {
		if r.readOnly {
			errs[i] = describe("write", sp.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(sp.Path)
		if err != nil || rel == "" {
			errs[i] = describe("write", sp.Path, fsroot.ErrEscape)
			continue
		}
		shown := sp.Path
		sp.Path = rel
		if r.maxOpen > 0 {
			r.mu.Lock()
			n := len(r.files)
			r.mu.Unlock()
			if n >= r.maxOpen {
				errs[i] = fmt.Sprintf("write %s: too many files open in this session (the server allows %d at once)", shown, r.maxOpen)
				continue
			}
		}
		if hashtree.ValidChunkSize(sp.ChunkSize) != nil || sp.ChunkSize > wire.MaxChunkSize || sp.Size < 0 || sp.Mode > 07777 ||
			sp.Shares < 0 || sp.Shares > wire.MaxShards || sp.Share < 0 || sp.Share > sp.Shares {
			errs[i] = fmt.Sprintf("write %s: invalid file announcement", sp.Path)
			continue
		}
		sp.Mode = r.peer.fileMode(sp.Mode)
		rf, msg := r.create(sp)
		if msg != "" {
			errs[i] = strings.Replace(msg, rel, shown, 1)
			continue
		}
		r.mu.Lock()
		if old := r.files[sp.FID]; old != nil {
			r.mu.Unlock()
			r.discard(rf)
			errs[i] = fmt.Sprintf("write %s: file id %d already in use", sp.Path, sp.FID)
			continue
		}
		r.files[sp.FID] = rf
		delete(r.failed, sp.FID)
		r.mu.Unlock()
		haves[i] = rf.haveRanges()
		if len(rf.done) > 0 {
			if done == nil {
				done = make([][]wire.AdoptChunk, len(specs))
			}
			for idx, d := range rf.done {
				done[i] = append(done[i], wire.AdoptChunk{Index: idx, Digest: d.String()})
			}
		}
	}
	return errs, haves, done
}

// mkdirParents makes the directories on the way to a file that arrives
// before they were made (in a share of a cluster transfer, which leaves
// directories to the final pass), counting those it created.
func (r *receiver) mkdirParents(dir string) error {
	n, err := r.root.MkdirAllCount(dir, 0o755)
	r.made.Add(int64(n))
	return err
}

// takeMade returns the directories mkdirParents created since the last
// call.
func (r *receiver) takeMade() int64 { return r.made.Swap(0) }

// create makes the partial file for sp, with its journal, locked against
// a second writer, and takes up what an interrupted transfer of the same
// source version left (see journal.go).
func (r *receiver) create(sp wire.FileSpec) (*rfile, string) {
	if dir := plan.Dir(sp.Path); dir != "" {
		if err := r.mkdirParents(dir); err != nil {
			return nil, describe("mkdir", dir, err)
		}
	}
	failed := func(err error) string {
		if errors.Is(err, errBusy) {
			return fmt.Sprintf("write %s: another transfer is writing this file", sp.Path)
		}
		return describe("create", sp.Path, err)
	}
	split := sp.Shares > 0
	rf := &rfile{spec: sp, jname: journalName(sp.Path), tree: hashtree.NewTree(sp.Size, sp.ChunkSize)}
	if sp.Share > 0 {
		rf.jname = shareJournalName(sp.Path, sp.Share-1)
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
		rf.part = splitPartName(sp.Path)
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
			rf.f.Close()
			rf.f = nil
		}
		if oldPart != "" && oldPart != rf.part {
			r.root.Remove(oldPart) // what an earlier transfer left: unlinked, never written
		}
		for _, n := range legacyNames(sp.Path, 0) {
			r.root.Remove(n)
		}
		f, name, err := r.createPart(sp.Path)
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
			r.shareChunks(rf, shareJournalName(sp.Path, k), shdr)
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
				return nil, describe("create", sp.Path, err)
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
			return nil, describe("create", sp.Path, err)
		}
	}
	return rf, ""
}

// shareChunks takes what the journal name of one share of a split file
// lists: trusted into rf.done (and the tree) when the share parked, that
// is flushed its data and journal; else re-hashed from the partial file
// into rf.have, for the sender to adopt what matches.
func (r *receiver) shareChunks(rf *rfile, name string, hdr journalHeader) {
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
func (r *receiver) rehash(rf *rfile, hdr journalHeader, recs []journalRec) map[int64]hashtree.Digest {
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
func (r *receiver) seed(rf *rfile, hdr journalHeader) map[int64]hashtree.Digest {
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
	for idx := int64(0); (idx+1)*hdr.Chunk <= n || (idx*hdr.Chunk < n && n == hdr.Size); idx++ {
		off := idx * hdr.Chunk
		l := min(hdr.Chunk, hdr.Size-off)
		if _, err := rf.f.ReadAt(buf[:l], off); err != nil && !errors.Is(err, io.EOF) {
			break
		}
		have[idx] = hashtree.ChunkDigest(buf[:l], off, hdr.Size, hdr.Chunk)
	}
	return have
}

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

// adopt records chunks that a resumed partial file already holds, where
// the sender's digest matches the one recomputed from disk; it returns
// the indexes that must be sent after all.
func (r *receiver) adopt(fid uint64, chunks []wire.AdoptChunk) ([]int64, error) {
	r.mu.Lock()
	rf := r.files[fid]
	r.mu.Unlock()
	if rf == nil {
		return nil, fmt.Errorf("adopt for unknown file %d", fid)
	}
	var missing []int64
	rf.mu.Lock()
	defer rf.mu.Unlock()
	for _, c := range chunks {
		d, err := hashtree.ParseDigest(c.Digest)
		if h, ok := rf.have[c.Index]; err != nil || !ok || h != d {
			missing = append(missing, c.Index)
			continue
		}
		if err := rf.tree.Set(c.Index, d); err != nil {
			missing = append(missing, c.Index)
		}
	}
	return missing, nil
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

// discard drops a file for good: partial file and journal (a share of a
// split file drops only its own journal: the partial file is shared).
func (r *receiver) discard(rf *rfile) {
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
func (r *receiver) dropSplitLeftovers(p string, shares int) {
	for k := range shares {
		r.root.Remove(shareJournalName(p, k))
	}
	if shares == 0 {
		if err := r.root.Remove(splitPartName(p)); err != nil {
			if _, serr := r.root.Lstat(shareJournalName(p, 0)); serr != nil {
				return
			}
		}
	}
	for k := shares; k < wire.MaxShards; k++ {
		if r.root.Remove(shareJournalName(p, k)) != nil && k >= shares+8 {
			// Shares are numbered from 0; a run of missing ones ends them.
			return
		}
	}
}

// dropJournal removes the journal of rf, then lets go of its lock.
func (r *receiver) dropJournal(rf *rfile) {
	if rf.journal == nil {
		return
	}
	r.root.Remove(rf.jname)
	rf.journal.Close()
	rf.journal = nil
}

// keep closes a file whose transfer was interrupted, leaving its partial
// file and journal for the next run to resume.
func (r *receiver) keep(rf *rfile) {
	if rf.f != nil {
		rf.f.Close()
	}
	if rf.journal != nil {
		rf.journal.Close()
	}
}

// fail gives up on a file: its partial file is removed, so nothing is left
// behind, and later chunks of it are refused with the same reason.
func (r *receiver) fail(fid uint64, rf *rfile, msg string) {
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

func (r *receiver) writeChunk(fid, idx uint64, off int64, p []byte, dg hashtree.Digest, verify bool) (byte, string) {
	r.mu.Lock()
	rf := r.files[fid]
	reason := r.failed[fid]
	r.mu.Unlock()
	if rf == nil {
		if reason == "" {
			reason = fmt.Sprintf("chunk for unknown file %d", fid)
		}
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
		write := rf.f.WriteAt
		if sp.Sparse {
			write = func(b []byte, o int64) (int, error) { return writeSparse(rf.f, b, o) }
		}
		if _, err := write(p, off); err != nil {
			// Another chunk may have failed first and closed the file:
			// its reason (say, the disk is full) is the one to report.
			rf.mu.Lock()
			first := rf.failed
			rf.mu.Unlock()
			if first != "" {
				return wire.AckFailed, first
			}
			msg := describe("write", sp.Path, err)
			r.fail(fid, rf, msg)
			return wire.AckFailed, msg
		}
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.failed != "" {
		return wire.AckFailed, rf.failed
	}
	if err := rf.tree.Set(int64(idx), dg); err != nil {
		return wire.AckFailed, fmt.Sprintf("write %s: %v", sp.Path, err)
	}
	rf.record(idx, dg)
	r.m.AddBytes(r.transport, metrics.Received, int64(len(p)))
	return wire.AckOK, ""
}

// commit finishes files whose chunks all arrived: the whole-file digest is
// checked, attributes set, data flushed (one flush for the whole batch) and
// the files renamed into place.
func (r *receiver) commit(cs []wire.CommitSpec) []string {
	errs := make([]string, len(cs))
	ready := make([]*rfile, len(cs))
	for i, c := range cs {
		r.mu.Lock()
		rf := r.files[c.FID]
		reason := r.failed[c.FID]
		r.mu.Unlock()
		if rf == nil {
			if reason == "" {
				reason = fmt.Sprintf("commit of unknown file %d", c.FID)
			}
			errs[i] = reason
			continue
		}
		sp := rf.spec
		if c.Digest == digestAbandoned {
			r.fail(c.FID, rf, "abandoned by the sender")
			continue
		}
		if c.Digest == digestPark {
			if sp.Share == 0 {
				errs[i] = fmt.Sprintf("commit %s: only a share of a split file parks", sp.Path)
				r.fail(c.FID, rf, errs[i])
				continue
			}
			if err := r.flush([]*os.File{rf.f}); err != nil {
				errs[i] = describe("flush", sp.Path, err)
				r.fail(c.FID, rf, errs[i])
				continue
			}
			// The mark goes in only after the data is durable; the
			// journal is flushed so the final pass finds it.
			rf.mu.Lock()
			rf.record(parkMark, hashtree.Digest{})
			rf.mu.Unlock()
			if rf.journal != nil && !r.noFsync {
				if err := rf.journal.Sync(); err != nil {
					errs[i] = describe("flush journal of", sp.Path, err)
					r.fail(c.FID, rf, errs[i])
					continue
				}
			}
			r.mu.Lock()
			delete(r.files, c.FID)
			r.mu.Unlock()
			r.keep(rf)
			continue
		}
		rf.mu.Lock()
		root, err := rf.tree.Root()
		rf.mu.Unlock()
		switch {
		case err != nil:
			errs[i] = fmt.Sprintf("commit %s: %v", sp.Path, err)
		case c.Digest != "" && root.String() != c.Digest:
			errs[i] = fmt.Sprintf("commit %s: whole-file BLAKE3 %s does not match the sender's %s", sp.Path, root, c.Digest)
		}
		if errs[i] == "" {
			if err := setFileAttrs(rf.f, sp.Mode); err != nil {
				errs[i] = describe("chmod", sp.Path, err)
			} else if err := setMtime(rf.f, sp.MtimeNs); err != nil {
				errs[i] = describe("set mtime of", sp.Path, err)
			}
		}
		if errs[i] != "" {
			r.fail(c.FID, rf, errs[i])
			continue
		}
		ready[i] = rf
	}
	var files []*os.File
	for _, rf := range ready {
		if rf != nil {
			files = append(files, rf.f)
		}
	}
	if err := r.flush(files); err != nil {
		for i, rf := range ready {
			if rf != nil {
				errs[i] = describe("flush", rf.spec.Path, err)
				r.fail(cs[i].FID, rf, errs[i])
				ready[i] = nil
			}
		}
	}
	for i, rf := range ready {
		if rf == nil {
			continue
		}
		r.mu.Lock()
		delete(r.files, cs[i].FID)
		r.mu.Unlock()
		rf.f.Close()
		if msg := r.place(rf.part, rf.spec.Path, rf.spec.ReplaceDir); msg != "" {
			errs[i] = msg
			r.root.Remove(rf.part)
		}
		r.dropJournal(rf)
		r.dropSplitLeftovers(rf.spec.Path, rf.spec.Shares)
		if errs[i] == "" {
			r.m.AddFiles(r.transport, metrics.Received, 1)
		}
	}
	return errs
}

// flush makes the data of files durable: one fdatasync for a single file,
// one syncfs for a batch.
func (r *receiver) flush(files []*os.File) error {
	if r.noFsync || len(files) == 0 {
		return nil
	}
	if len(files) == 1 {
		return unix.Fdatasync(int(files[0].Fd()))
	}
	return r.root.Syncfs()
}

func setFileAttrs(f *os.File, mode uint32) error {
	return unix.Fchmod(int(f.Fd()), mode&07777)
}

// place renames a finished partial file or symlink over its target. A
// directory in the way is removed with its contents only when replaceDir
// allows it (sync); otherwise only an empty one goes, as with rsync.
func (r *receiver) place(part, target string, replaceDir bool) string {
	err := r.root.Rename(part, target)
	if err == nil {
		return ""
	}
	if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		if !replaceDir {
			if err := r.root.Remove(target); errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				return fmt.Sprintf("write %s: a directory that is not empty stands at the destination (copy deletes nothing; use sync to replace it)", target)
			} else if err != nil {
				return describe("remove", target, err)
			}
		} else if err := r.root.RemoveAll(target); err != nil {
			return describe("remove", target, err)
		}
		if err := r.root.Rename(part, target); err == nil {
			return ""
		}
	}
	return describe("rename into", target, err)
}

// writeBatch writes a batch of small files: each is verified and written
// to an unnamed file in its directory (O_TMPFILE; a hidden partial file
// where the file system has none), then one flush covers them all, then
// they are given their names: a link for a new file, a rename over the old
// one for an update. The payload starts with a reserved byte; verify (the
// session's decision, never the message's) says whether each file is
// checked against its digest.
func (r *receiver) writeBatch(p []byte, count int, verify bool) ([]string, error) {
	d := &wire.Dec{Buf: p}
	d.U8() // reserved
	if count < 1 || count > wire.MaxBatchFiles || count > (len(p)-1)/wire.MinSmallEntry {
		return nil, fmt.Errorf("bad batch: %d files in %d bytes", count, len(p))
	}
	errs := make([]string, count)
	files := make([]wire.SmallFile, count)
	parts := make([]string, count) // named partial files
	temps := make([]int, count)    // unnamed files (fd+1), open until named
	var open []*os.File            // kept open only for a one-file batch (fdatasync)
	// Each directory of the batch is resolved once; files are created and
	// named relative to it.
	dirs := map[string]*fsroot.Dir{}
	defer func() {
		for _, f := range open {
			f.Close()
		}
		for i, fd1 := range temps {
			if fd1 != 0 {
				unix.Close(fd1 - 1) // an unnamed file left open vanishes here
				temps[i] = 0
				putTempFD()
			}
		}
		for _, dd := range dirs {
			dd.Close()
		}
	}()
	written := 0
	named := r.updating.Load()
	// createMask holds, per directory, the permission bits that survive
	// creation (the umask, or a default ACL), learnt from its first
	// unnamed file: a file created with bits inside it needs no fchmod.
	createMask := map[*fsroot.Dir]uint32{}
	for i := range files {
		files[i] = wire.ReadSmall(d)
		if d.Err != nil {
			return nil, fmt.Errorf("bad batch entry %d: %w", i, d.Err)
		}
		sf := &files[i]
		if r.readOnly {
			errs[i] = describe("write", sf.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(sf.Path)
		if err != nil || rel == "" || sf.Mode > 07777 {
			errs[i] = describe("write", sf.Path, fsroot.ErrEscape)
			continue
		}
		sf.Path = rel
		sf.Mode = r.peer.fileMode(sf.Mode)
		if verify && hashtree.Sum(sf.Data) != sf.Digest {
			r.m.VerifyFailure()
			errs[i] = fmt.Sprintf("write %s: content failed BLAKE3 verification", sf.Path)
			continue
		}
		dir := plan.Dir(sf.Path)
		dd := dirs[dir]
		if dd == nil {
			if dir != "" {
				if err := r.mkdirParents(dir); err != nil {
					errs[i] = describe("mkdir", dir, err)
					continue
				}
			}
			if dd, err = r.root.OpenDir(dir); err != nil {
				errs[i] = describe("open directory", dir, err)
				continue
			}
			dirs[dir] = dd
		}
		if !r.noTmpfile.Load() && (!named || i%16 == 0) && takeTempFD() {
			// While updates dominate, named partial files (renamed over
			// the old files) are cheaper; every 16th file still probes.
			if msg, ok := r.writeTemp(dd, sf, createMask, &temps[i]); ok {
				written++
				errs[i] = msg
				continue
			}
		}
		var f *os.File
		part, err := freshName(sf.Path, func(name string) (err error) {
			f, err = dd.OpenFile(plan.Base(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			return err
		})
		if err != nil {
			errs[i] = describe("create", sf.Path, err)
			continue
		}
		if count == 1 {
			open = append(open, f)
		}
		written++
		if err := writeSmall(int(f.Fd()), sf); err != nil {
			errs[i] = describe("write", sf.Path, err)
		} else if err := setFileAttrs(f, sf.Mode); err != nil {
			errs[i] = describe("chmod", sf.Path, err)
		} else if err := setMtime(f, sf.MtimeNs); err != nil {
			errs[i] = describe("set mtime of", sf.Path, err)
		}
		if count != 1 {
			f.Close()
		}
		if errs[i] != "" {
			dd.Remove(plan.Base(part))
			continue
		}
		parts[i] = part
	}
	if d.Err != nil || len(d.Buf) != 0 {
		return nil, errors.New("bad batch payload")
	}
	var err error
	if count == 1 && temps[0] != 0 {
		if !r.noFsync {
			err = unix.Fdatasync(temps[0] - 1)
		}
	} else if len(open) == 1 {
		err = r.flush(open)
	} else if written > 0 && !r.noFsync {
		err = r.root.Syncfs()
	}
	if err != nil {
		for i := range parts {
			if parts[i] != "" || temps[i] != 0 {
				errs[i] = describe("flush", files[i].Path, err)
			}
			if parts[i] != "" {
				r.root.Remove(parts[i])
				parts[i] = ""
			}
		}
		return errs, nil // the deferred close discards the unnamed files
	}
	linked, replaced := 0, 0
	defer func() {
		if linked+replaced > 0 {
			r.updating.Store(replaced > linked)
		}
	}()
	for i := range files {
		if temps[i] != 0 {
			dd := dirs[plan.Dir(files[i].Path)]
			name := plan.Base(files[i].Path)
			lerr := dd.LinkTemp(temps[i]-1, name)
			if lerr == nil {
				linked++
				r.m.AddBytes(r.transport, metrics.Received, files[i].Size)
				r.m.AddFiles(r.transport, metrics.Received, 1)
				continue
			}
			if !errors.Is(lerr, syscall.EEXIST) {
				errs[i] = describe("link into", files[i].Path, lerr)
				continue
			}
			// Something is in the way: an update, which must replace the
			// old file atomically, so the new one gets the partial name
			// first and is renamed over it.
			replaced++
			part, lerr := freshName(files[i].Path, func(name string) error {
				return dd.LinkTemp(temps[i]-1, plan.Base(name))
			})
			if lerr != nil {
				errs[i] = describe("create", files[i].Path, lerr)
				continue
			}
			parts[i] = part
		}
		part := parts[i]
		if part == "" {
			continue
		}
		// The common case: a rename within the directory. Anything in the
		// way that rename(2) cannot replace goes through place.
		if dirs[plan.Dir(part)].Rename(plan.Base(part), plan.Base(files[i].Path)) == nil {
			r.m.AddBytes(r.transport, metrics.Received, files[i].Size)
			r.m.AddFiles(r.transport, metrics.Received, 1)
			continue
		}
		if msg := r.place(part, files[i].Path, files[i].ReplaceDir); msg != "" {
			errs[i] = msg
			r.root.Remove(part)
			continue
		}
		r.m.AddBytes(r.transport, metrics.Received, files[i].Size)
		r.m.AddFiles(r.transport, metrics.Received, 1)
	}
	return errs, nil
}

// writeTemp writes sf to a new unnamed file in dd, with its mode and
// mtime, and stores its descriptor+1 in *fd1. ok is false when the file
// system has no O_TMPFILE; msg says what failed (the file is then gone).
func (r *receiver) writeTemp(dd *fsroot.Dir, sf *wire.SmallFile, masks map[*fsroot.Dir]uint32, fd1 *int) (msg string, ok bool) {
	mask, known := masks[dd]
	perm := uint32(0o777) // the first file learns the mask; nobody can open it
	if known {
		perm = sf.Mode & 0o777
	}
	fd, err := dd.CreateTemp(perm)
	if err != nil {
		putTempFD()
		if fsroot.TempUnsupported(err) {
			r.noTmpfile.Store(true)
			return "", false
		}
		return describe("create", sf.Path, err), true
	}
	fail := func(msg string) (string, bool) {
		unix.Close(fd)
		putTempFD()
		return msg, true
	}
	if !known {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fail(describe("stat", sf.Path, err))
		}
		mask = st.Mode & 0o777
		masks[dd] = mask
	}
	if err := writeSmall(fd, sf); err != nil {
		return fail(describe("write", sf.Path, err))
	}
	// Set-id and sticky bits, and bits the mask took away, need fchmod.
	if !known || sf.Mode&^mask != 0 {
		if err := unix.Fchmod(fd, sf.Mode&0o7777); err != nil {
			return fail(describe("chmod", sf.Path, err))
		}
	}
	if err := setMtimeFd(fd, sf.MtimeNs); err != nil {
		return fail(describe("set mtime of", sf.Path, err))
	}
	*fd1 = fd + 1
	return "", true
}

// tempFDs bounds the unnamed files that batches hold open at once, all
// sessions together, well within RLIMIT_NOFILE; beyond it a batch uses
// named partial files, which it closes as it goes.
var tempFDs struct {
	once sync.Once
	left atomic.Int64
}

func takeTempFD() bool {
	tempFDs.once.Do(func() {
		n := int64(256)
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			n = int64(min(rl.Cur/4, 8192))
		}
		tempFDs.left.Store(n)
	})
	if tempFDs.left.Add(-1) >= 0 {
		return true
	}
	tempFDs.left.Add(1)
	return false
}

func putTempFD() { tempFDs.left.Add(1) }

// meta applies metadata operations in order.
func (r *receiver) meta(ops []wire.MetaOp) []string {
	errs := make([]string, len(ops))
	for i, op := range ops {
		if r.readOnly {
			errs[i] = describe(op.Op, op.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(op.Path)
		if err != nil || (rel == "" && op.Op != "mkdir" && op.Op != "setattrs") {
			errs[i] = describe(op.Op, op.Path, fsroot.ErrEscape)
			continue
		}
		shown := op.Path
		op.Path = rel
		if msg := r.metaOne(op); msg != "" {
			errs[i] = strings.Replace(msg, " "+rel, " "+shown, 1)
		}
	}
	return errs
}

func (r *receiver) metaOne(op wire.MetaOp) string {
	switch op.Op {
	case "mkdir":
		info, err := r.root.Lstat(op.Path)
		switch {
		case err == nil && info.Type == fsroot.TypeDir:
			r.makeWritable(op.Path, info)
		case err == nil:
			if err := r.root.Remove(op.Path); err != nil {
				return describe("replace", op.Path, err)
			}
			fallthrough
		default:
			if err := r.root.MkdirAll(op.Path, 0o755); err != nil {
				return describe("mkdir", op.Path, err)
			}
		}
		r.deferDir(op)
	case "symlink":
		if dir := plan.Dir(op.Path); dir != "" {
			if err := r.root.MkdirAll(dir, 0o755); err != nil {
				return describe("mkdir", dir, err)
			}
		}
		part, err := freshName(op.Path, func(name string) error { return r.root.Symlink(op.Target, name) })
		if err != nil {
			return describe("symlink", op.Path, err)
		}
		if err := r.root.Lchtimes(part, op.MtimeNs, op.MtimeNs); err != nil {
			r.root.Remove(part)
			return describe("set mtime of", op.Path, err)
		}
		if msg := r.place(part, op.Path, op.ReplaceDir); msg != "" {
			r.root.Remove(part)
			return msg
		}
	case "link":
		target, err := r.rel(op.Target)
		if err != nil || target == "" {
			return describe("link", op.Path, fsroot.ErrEscape)
		}
		part, err := freshName(op.Path, func(name string) error { return r.root.Link(target, name) })
		if err != nil {
			return describe("link", op.Path, err)
		}
		if msg := r.place(part, op.Path, op.ReplaceDir); msg != "" {
			r.root.Remove(part)
			return msg
		}
	case "delete":
		if err := r.root.RemoveAll(op.Path); err != nil {
			return describe("delete", op.Path, err)
		}
	case "setattrs":
		return r.setAttrs(op)
	default:
		return fmt.Sprintf("unknown operation %q", op.Op)
	}
	return ""
}

// setAttrs sets the mode and mtime of an existing entry: through a
// handle on the inode found at the name (never following a symlink
// there), and, for a peer, never on a regular file with other hard links,
// which may lead outside the tree.
func (r *receiver) setAttrs(op wire.MetaOp) string {
	pin, err := r.root.Pin(op.Path)
	if err != nil {
		return describe("stat", op.Path, err)
	}
	defer pin.Close()
	info, err := pin.Info()
	if err != nil {
		return describe("stat", op.Path, err)
	}
	switch info.Type {
	case fsroot.TypeDir:
		r.deferDir(op)
		return ""
	case fsroot.TypeSymlink:
		// Linux has no link modes; the times go on the link itself.
		if err := r.root.Lchtimes(op.Path, op.MtimeNs, op.MtimeNs); err != nil {
			return describe("set mtime of", op.Path, err)
		}
		return ""
	}
	if r.peer != nil && info.Type == fsroot.TypeFile && info.Nlink > 1 {
		return fmt.Sprintf("set attributes of %s: refused: the file has %d hard links, and one may lead outside the export", op.Path, info.Nlink)
	}
	if err := pin.Chmod(r.peer.fileMode(op.Mode)); err != nil {
		return describe("chmod", op.Path, err)
	}
	if err := pin.Chtimes(op.MtimeNs, op.MtimeNs); err != nil {
		return describe("set mtime of", op.Path, err)
	}
	return ""
}

func (r *receiver) deferDir(op wire.MetaOp) {
	r.mu.Lock()
	r.dirs = append(r.dirs, dirAttr{path: op.Path, mode: r.peer.dirMode(op.Mode), mtimeNs: op.MtimeNs})
	r.mu.Unlock()
}

// finish applies directory attributes, deepest first (creating entries in
// a directory changes its mtime, and a read-only directory must stay
// writable until its contents are in), then makes the renames durable.
func (r *receiver) finish() error {
	r.mu.Lock()
	dirs := r.dirs
	r.dirs = nil
	r.mu.Unlock()
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].path, "/") > strings.Count(dirs[j].path, "/")
	})
	r.restoreWritable() // then the directories' own attributes, where they come with the run
	var first error
	for _, d := range dirs {
		if err := r.root.Chmod(d.path, d.mode); err != nil && first == nil {
			first = errors.New(describe("chmod", d.path, err))
		}
		if err := r.root.Lchtimes(d.path, d.mtimeNs, d.mtimeNs); err != nil && first == nil {
			first = errors.New(describe("set mtime of", d.path, err))
		}
	}
	if !r.noFsync {
		if err := r.root.Syncfs(); err != nil && first == nil {
			first = fmt.Errorf("flush: %w", err)
		}
	}
	return first
}

// abort removes the partial files of transfers that did not finish.
func (r *receiver) abort() {
	defer r.restoreWritable()
	r.mu.Lock()
	files := r.files
	r.files = map[uint64]*rfile{}
	r.mu.Unlock()
	for _, rf := range files {
		rf.mu.Lock()
		if rf.failed == "" {
			rf.failed = "transfer interrupted"
			r.keep(rf)
		}
		rf.mu.Unlock()
	}
}
