package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
)

// maxLinkHops bounds the symlinks followed in one path, as the kernel's
// 40 (ELOOP).
const maxLinkHops = 40

// statFunc returns the entry at a path beneath a tree (with its target
// for a symlink), or nil if nothing is there.
type statFunc func(ctx context.Context, path string) (*plan.Entry, error)

// followLinks resolves the symlinks in p, a slash path beneath a tree, the
// way the kernel would, but within the tree: a link's target is taken
// relative to the directory holding the link; a path with a link that is
// absolute, climbs above the top of the tree or loops is returned as it
// stands, for fsroot to refuse where it is used ("path escapes the root"). This is how the root of
// a transfer given as a symlink to a directory is followed on a peer
// (whose tree is confined by fsroot, where such a link would otherwise be
// a link) as it is on this machine. Resolution stops at the first
// component that does not exist or is not a directory; the rest of p is
// returned unchanged, for the caller's usual errors.
func followLinks(ctx context.Context, p string, stat statFunc) (string, error) {
	if ctx.Err() != nil {
		return "", context.Cause(ctx)
	}
	parts := strings.Split(p, "/")
	done, hops := "", 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if done == "" {
				return p, nil // out of the tree: refused where it is used
			}
			done = plan.Dir(done)
			continue
		}
		next := plan.Join(done, c)
		e, err := stat(ctx, next)
		if err != nil {
			return p, nil // left to the caller's usual errors
		}
		if e == nil || (e.Type != plan.TypeSymlink && e.Type != plan.TypeDir) {
			return strings.Join(append([]string{next}, parts...), "/"), nil
		}
		if e.Type == plan.TypeDir {
			done = next
			continue
		}
		if hops++; hops > maxLinkHops || strings.HasPrefix(e.Target, "/") {
			// A loop, or an absolute link, which fsroot never follows:
			// the path as given meets their usual errors.
			return p, nil
		}
		parts = append(strings.Split(e.Target, "/"), parts...)
	}
	return done, nil
}

// rootStat is a statFunc over a local fsroot tree.
func rootStat(r *fsroot.Root) statFunc {
	return func(ctx context.Context, p string) (*plan.Entry, error) {
		info, err := r.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		e := plan.EntryFromInfo(p, info)
		if e.Type == plan.TypeSymlink {
			if e.Target, err = r.Readlink(p); err != nil {
				return nil, err
			}
		}
		return &e, nil
	}
}

// The overlap checks refuse a transfer whose source and destination
// overlap (one is inside the other, or they are the same), as rclone
// does: a sync would delete its own source, and a copy into the source
// recurses. Paths are compared after their symlinks are resolved. A
// single-file source overlaps only a destination that is its own
// directory.

// checkLocalOverlap checks two local paths.
func checkLocalOverlap(src, dst Endpoint) error {
	sp, err := evalLocal(src.Path)
	if err != nil {
		return nil // a missing source is reported by the run
	}
	info, err := os.Stat(sp)
	if err != nil {
		return nil
	}
	dp, err := evalLocal(dst.Path)
	if err != nil {
		return nil
	}
	return overlap(src, dst, filepath.ToSlash(sp), filepath.ToSlash(dp), info.IsDir())
}

// checkPeerOverlap checks two paths on the peer of session s.
func checkPeerOverlap(ctx context.Context, src, dst Endpoint, s *session.Session) error {
	stat := (&remoteDest{s: s}).stat
	sp, err := followLinks(ctx, strings.Trim(src.Path, "/"), stat)
	if err != nil {
		return err
	}
	dp, err := followLinks(ctx, strings.Trim(dst.Path, "/"), stat)
	if err != nil {
		return err
	}
	e, err := stat(ctx, sp)
	if err != nil || e == nil {
		return nil // a missing source is reported by the run
	}
	return overlap(src, dst, "/"+sp, "/"+dp, e.Type == plan.TypeDir)
}

// overlap compares the resolved absolute slash paths sp and dp.
func overlap(src, dst Endpoint, sp, dp string, srcIsDir bool) error {
	inside := func(a, b string) bool { // a is b or beneath it
		b = strings.TrimSuffix(b, "/")
		return a == b || strings.HasPrefix(a, b+"/")
	}
	same := srcIsDir && (inside(sp, dp) || inside(dp, sp))
	if !srcIsDir {
		dir := sp[:strings.LastIndexByte(sp, '/')+1]
		same = strings.TrimSuffix(dir, "/") == strings.TrimSuffix(dp, "/")
	}
	if same {
		return exitcode.Usagef("source %s and destination %s overlap (one is inside the other); choose a destination outside the source", src, dst)
	}
	return nil
}

// evalLocal resolves the symlinks of a local path that may not exist yet
// (all of its existing part) and makes it absolute.
func evalLocal(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(abs)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return "", err
		}
		rest = filepath.Join(filepath.Base(abs), rest)
		abs = parent
	}
}
