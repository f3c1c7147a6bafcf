package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Xattrs makes the extended attributes within scope of each entry named in
// sets match the set (-X, -A): attributes that differ are set, those the
// source does not have removed; all others are left alone. Attributes the
// destination cannot keep (no support in its file system, a namespace
// that needs root) are named in the entry's result, not failed.
func (r *Receiver) Xattrs(scope wire.XattrScope, sets []wire.XattrSet) []wire.XattrResult {
	res := make([]wire.XattrResult, len(sets))
	if err := wire.ValidateXattrSets(sets); err != nil {
		for i := range res {
			res[i].Err = err.Error()
		}
		return res
	}
	privileged := os.Geteuid() == 0
	for i, set := range sets {
		if r.readOnly {
			res[i].Err = fsroot.Describe("set extended attributes of", set.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(set.Path)
		if err != nil {
			res[i].Err = fsroot.Describe("set extended attributes of", set.Path, fsroot.ErrEscape)
			continue
		}
		res[i] = r.xattrsOne(scope, privileged, rel, set)
	}
	return res
}

func (r *Receiver) xattrsOne(scope wire.XattrScope, privileged bool, rel string, set wire.XattrSet) wire.XattrResult {
	var res wire.XattrResult
	pin, err := r.root.Pin(rel)
	if err != nil {
		res.Err = fsroot.Describe("set extended attributes of", set.Path, err)
		return res
	}
	defer pin.Close()
	info, err := pin.Info()
	if err != nil {
		res.Err = fsroot.Describe("set extended attributes of", set.Path, err)
		return res
	}
	if info.Type != fsroot.TypeFile && info.Type != fsroot.TypeDir {
		return res // symlinks keep none (see fsroot.Pinned.Xattrs)
	}
	if r.peer != nil && info.Type == fsroot.TypeFile && info.Nlink > 1 {
		res.Err = fmt.Sprintf("set extended attributes of %s: refused: the file has %d hard links, and one may lead outside the export", set.Path, info.Nlink)
		return res
	}
	notKept := func(name string, why error) {
		res.NotKept = append(res.NotKept, name)
		if res.NotKeptWhy == "" {
			res.NotKeptWhy = xattrReason(why)
		}
	}
	have, err := pin.Xattrs(func(name string) bool { return scope.Keeps(name, privileged) })
	if err != nil {
		res.Err = fsroot.Describe("read extended attributes of", set.Path, err)
		return res
	}
	cur := make(map[string][]byte, len(have))
	for _, a := range have {
		cur[a.Name] = a.Value
	}
	want := make(map[string]bool, len(set.Attrs))
	var ops []func() error
	var names []string
	for _, a := range set.Attrs {
		want[a.Name] = true
		if !scope.Keeps(a.Name, privileged) {
			notKept(a.Name, errNeedsRoot)
			continue
		}
		if v, ok := cur[a.Name]; ok && bytes.Equal(v, a.Value) {
			continue
		}
		ops = append(ops, func() error { return pin.SetXattr(a.Name, a.Value) })
		names = append(names, a.Name)
	}
	for _, a := range have {
		if !want[a.Name] {
			ops = append(ops, func() error { return pin.RemoveXattr(a.Name) })
			names = append(names, a.Name)
		}
	}
	if len(ops) == 0 {
		return res
	}
	// Setting a user attribute needs write permission on the file: a
	// read-only file of ours is made writable for the change, as rsync does.
	if info.Type == fsroot.TypeFile && info.Mode&0o200 == 0 && info.Uid == uint32(os.Geteuid()) {
		if err := pin.Chmod(info.Mode | 0o200); err == nil {
			defer pin.Chmod(info.Mode)
		}
	}
	for j, op := range ops {
		err := op()
		switch {
		case err == nil:
			res.Changed = true
		case fsroot.XattrsUnsupported(err):
			for _, n := range names[j:] {
				notKept(n, err)
			}
			return res
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOSPC), errors.Is(err, unix.E2BIG), errors.Is(err, unix.ERANGE):
			notKept(names[j], err)
		default:
			res.Err = fsroot.Describe("set extended attributes of", set.Path, err)
			return res
		}
	}
	return res
}

// errNeedsRoot is why a trusted.* or security.* attribute is not kept by
// an unprivileged receiver.
var errNeedsRoot = errors.New("only root may set it")

// xattrReason is why an attribute was not kept, in words.
func xattrReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case fsroot.XattrsUnsupported(err):
		return "the destination file system does not support them"
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return "not permitted (run as root to keep trusted.* and security.* attributes)"
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.E2BIG), errors.Is(err, unix.ERANGE):
		return "no room for them in the destination file system"
	}
	return err.Error()
}
