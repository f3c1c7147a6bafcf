package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/plan"
)

// The overlap checks refuse a transfer whose source and destination
// overlap (one is inside the other, or they are the same), as rclone
// does: a sync would delete its own source, and a copy into the source
// recurses. Paths are compared after their symlinks are resolved. A
// single-file source overlaps only a destination that is its own
// directory.

// checkLocalOverlap checks two local paths; name is the copy's name in
// dst (copyto, moveto), or "".
func checkLocalOverlap(src, dst Endpoint, name string) error {
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
	return overlap(src, dst, filepath.ToSlash(sp), filepath.ToSlash(dp), name, info.IsDir())
}

// checkPeerOverlap checks two paths on the peer of session s; name as
// for checkLocalOverlap.
func checkPeerOverlap(ctx context.Context, src, dst Endpoint, name string, s *session.Session) error {
	stat := send.NewRemote(s, 0).Stat
	sp, err := plan.FollowLinks(ctx, strings.Trim(src.Path, "/"), stat)
	if err != nil {
		return err
	}
	dp, err := plan.FollowLinks(ctx, strings.Trim(dst.Path, "/"), stat)
	if err != nil {
		return err
	}
	e, err := stat(ctx, sp)
	if err != nil || e == nil {
		return nil // a missing source is reported by the run
	}
	return overlap(src, dst, "/"+sp, "/"+dp, name, e.Type == plan.TypeDir)
}

// overlap compares the resolved absolute slash paths sp and dp; name,
// when set (copyto, moveto), is what the copy is called in dp.
func overlap(src, dst Endpoint, sp, dp, name string, srcIsDir bool) error {
	inside := func(a, b string) bool { // a is b or beneath it
		b = strings.TrimSuffix(b, "/")
		return a == b || strings.HasPrefix(a, b+"/")
	}
	if name != "" && srcIsDir {
		dp = strings.TrimSuffix(dp, "/") + "/" + name // the contents go there
	}
	same := srcIsDir && (inside(sp, dp) || inside(dp, sp))
	if !srcIsDir {
		dir := sp[:strings.LastIndexByte(sp, '/')+1]
		if name == "" {
			name = sp[len(dir):]
		}
		same = strings.TrimSuffix(dir, "/") == strings.TrimSuffix(dp, "/") && sp[len(dir):] == name
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
