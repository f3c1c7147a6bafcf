package receive

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
	"github.com/xfer-io/xfer/transfer/wire"
)

// commit finishes files whose chunks all arrived: the whole-file digest is
// checked, attributes set, data flushed (one flush for the whole batch) and
// the files renamed into place.
func (r *Receiver) Commit(cs []wire.CommitSpec) []string {
	errs := make([]string, len(cs))
	ready := make([]*rfile, len(cs))
	for i, c := range cs {
		rf, reason := r.lookup(c.FID, "commit of")
		if rf == nil {
			errs[i] = reason
			continue
		}
		sp := rf.spec
		switch c.Do {
		case wire.CommitFinish:
		case wire.CommitAbandon:
			r.fail(c.FID, rf, "abandoned by the sender")
			continue
		case wire.CommitPark:
			if sp.Share == 0 {
				errs[i] = fmt.Sprintf("commit %s: only a share of a split file parks", sp.Path)
				r.fail(c.FID, rf, errs[i])
				continue
			}
			if err := r.flush([]*os.File{rf.f}); err != nil {
				errs[i] = fsroot.Describe("flush", sp.Path, err)
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
					errs[i] = fsroot.Describe("flush journal of", sp.Path, err)
					r.fail(c.FID, rf, errs[i])
					continue
				}
			}
			r.mu.Lock()
			delete(r.files, c.FID)
			r.mu.Unlock()
			r.keep(rf)
			continue
		default:
			errs[i] = fmt.Sprintf("commit %s: unknown action %d", sp.Path, c.Do)
			r.fail(c.FID, rf, errs[i])
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
			r.chownFd(int(rf.f.Fd()), sp.Owner)
			if err := setFileAttrs(rf.f, sp.Mode); err != nil {
				errs[i] = fsroot.Describe("chmod", sp.Path, err)
			} else if err := setMtime(rf.f, sp.MtimeNs); err != nil {
				errs[i] = fsroot.Describe("set mtime of", sp.Path, err)
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
				errs[i] = fsroot.Describe("flush", rf.spec.Path, err)
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
func (r *Receiver) flush(files []*os.File) error {
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
func (r *Receiver) place(part, target string, replaceDir bool) string {
	err := r.root.Rename(part, target)
	if err == nil {
		return ""
	}
	if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		if !replaceDir {
			if err := r.root.Remove(target); errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
				return fmt.Sprintf("write %s: a directory that is not empty stands at the destination (copy deletes nothing; use sync to replace it)", target)
			} else if err != nil {
				return fsroot.Describe("remove", target, err)
			}
		} else if err := r.root.RemoveAll(target); err != nil {
			return fsroot.Describe("remove", target, err)
		}
		if err := r.root.Rename(part, target); err == nil {
			return ""
		}
	}
	return fsroot.Describe("rename into", target, err)
}

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
