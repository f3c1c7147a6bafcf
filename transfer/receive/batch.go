package receive

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// writeBatch writes a batch of small files: each is verified and written
// to an unnamed file in its directory (O_TMPFILE; a hidden partial file
// where the file system has none), then one flush covers them all, then
// they are given their names: a link for a new file, a rename over the old
// one for an update. The payload starts with a reserved byte; check (the
// session's decision, never the message's) says whether and how each file
// is checked against its digest: under wire.BatchWhole a file that fails
// fails the batch with wire.ErrBatchAltered before any file is written.
func (r *Receiver) WriteBatch(p []byte, count int, check wire.BatchCheck) ([]string, error) {
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
				r.fds.put()
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
	}
	if len(d.Buf) != 0 {
		return nil, fmt.Errorf("bad batch: %d bytes after its %d files", len(d.Buf), count)
	}
	verify := check != wire.BatchUnchecked
	var sums []hashtree.Digest
	if verify {
		// All files of the batch are hashed together: their chunks share
		// the sixteen-lane kernel's passes.
		data := make([][]byte, count)
		for i := range files {
			data[i] = files[i].Data
		}
		sums = make([]hashtree.Digest, count)
		var m hashtree.Many
		m.Sum(data, sums)
		if check == wire.BatchWhole {
			for i := range files {
				if sums[i] != files[i].Digest {
					r.m.VerifyFailure()
					return nil, fmt.Errorf("batch entry %d: %w", i, wire.ErrBatchAltered)
				}
			}
		}
	}
	for i := range files {
		sf := &files[i]
		if r.readOnly {
			errs[i] = fsroot.Describe("write", sf.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(sf.Path)
		if err != nil || rel == "" || sf.Mode > 07777 {
			errs[i] = fsroot.Describe("write", sf.Path, fsroot.ErrEscape)
			continue
		}
		sf.Path = rel
		sf.Mode = r.peer.fileMode(sf.Mode)
		if verify && sums[i] != sf.Digest {
			r.m.VerifyFailure()
			errs[i] = fmt.Sprintf("write %s: content failed BLAKE3 verification", sf.Path)
			continue
		}
		dir := plan.Dir(sf.Path)
		dd := dirs[dir]
		if dd == nil {
			if dir != "" {
				if err := r.mkdirParents(dir); err != nil {
					errs[i] = fsroot.Describe("mkdir", dir, err)
					continue
				}
			}
			if dd, err = r.root.OpenDir(dir); err != nil {
				errs[i] = fsroot.Describe("open directory", dir, err)
				continue
			}
			dirs[dir] = dd
		}
		if !r.noTmpfile.Load() && (!named || i%16 == 0) && r.fds.take() {
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
			errs[i] = fsroot.Describe("create", sf.Path, err)
			continue
		}
		if count == 1 {
			open = append(open, f)
		}
		written++
		err = writeSmall(int(f.Fd()), sf)
		if err == nil {
			r.chownFd(int(f.Fd()), sf.Owner)
		}
		if err != nil {
			errs[i] = fsroot.Describe("write", sf.Path, err)
		} else if err := setFileAttrs(f, sf.Mode); err != nil {
			errs[i] = fsroot.Describe("chmod", sf.Path, err)
		} else if err := setMtime(f, sf.MtimeNs); err != nil {
			errs[i] = fsroot.Describe("set mtime of", sf.Path, err)
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
				errs[i] = fsroot.Describe("flush", files[i].Path, err)
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
				errs[i] = fsroot.Describe("link into", files[i].Path, lerr)
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
				errs[i] = fsroot.Describe("create", files[i].Path, lerr)
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
func (r *Receiver) writeTemp(dd *fsroot.Dir, sf *wire.SmallFile, masks map[*fsroot.Dir]uint32, fd1 *int) (msg string, ok bool) {
	mask, known := masks[dd]
	perm := uint32(0o777) // the first file learns the mask; nobody can open it
	if known {
		perm = sf.Mode & 0o777
	}
	fd, err := dd.CreateTemp(perm)
	if err != nil {
		r.fds.put()
		if fsroot.TempUnsupported(err) {
			r.noTmpfile.Store(true)
			return "", false
		}
		return fsroot.Describe("create", sf.Path, err), true
	}
	fail := func(msg string) (string, bool) {
		unix.Close(fd)
		r.fds.put()
		return msg, true
	}
	if !known {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fail(fsroot.Describe("stat", sf.Path, err))
		}
		mask = st.Mode & 0o777
		masks[dd] = mask
	}
	if err := writeSmall(fd, sf); err != nil {
		return fail(fsroot.Describe("write", sf.Path, err))
	}
	// Set-id and sticky bits, and bits the mask took away, need fchmod;
	// so does a mode a change of owner may have cut.
	chowned := r.chownFd(fd, sf.Owner)
	if !known || sf.Mode&^mask != 0 || chowned {
		if err := unix.Fchmod(fd, sf.Mode&0o7777); err != nil {
			return fail(fsroot.Describe("chmod", sf.Path, err))
		}
	}
	if err := setMtimeFd(fd, sf.MtimeNs); err != nil {
		return fail(fsroot.Describe("set mtime of", sf.Path, err))
	}
	*fd1 = fd + 1
	return "", true
}
