package plan

import (
	"context"
	"errors"
	"io/fs"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// maxLinkHops bounds the symlinks followed in one path, as the kernel's
// 40 (ELOOP).
const maxLinkHops = 40

// StatFunc returns the entry at a path beneath a tree (with its target
// for a symlink), or nil if nothing is there.
type StatFunc func(ctx context.Context, path string) (*Entry, error)

// FollowLinks resolves the symlinks in p, a slash path beneath a tree, the
// way the kernel would, but within the tree: a link's target is taken
// relative to the directory holding the link; a path with a link that is
// absolute, climbs above the top of the tree or loops is returned as it
// stands, for fsroot to refuse where it is used ("path escapes the root"). This is how the root of
// a transfer given as a symlink to a directory is followed on a peer
// (whose tree is confined by fsroot, where such a link would otherwise be
// a link) as it is on this machine. Resolution stops at the first
// component that does not exist or is not a directory; the rest of p is
// returned unchanged, for the caller's usual errors.
func FollowLinks(ctx context.Context, p string, stat StatFunc) (string, error) {
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
			done = Dir(done)
			continue
		}
		next := Join(done, c)
		e, err := stat(ctx, next)
		if err != nil {
			return p, nil // left to the caller's usual errors
		}
		if e == nil || (e.Type != TypeSymlink && e.Type != TypeDir) {
			return strings.Join(append([]string{next}, parts...), "/"), nil
		}
		if e.Type == TypeDir {
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

// RootStat is a StatFunc over a local fsroot tree.
func RootStat(r *fsroot.Root) StatFunc {
	return func(ctx context.Context, p string) (*Entry, error) {
		info, err := r.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		e := EntryFromInfo(p, info)
		if e.Type == TypeSymlink {
			if e.Target, err = r.Readlink(p); err != nil {
				return nil, err
			}
		}
		return &e, nil
	}
}
