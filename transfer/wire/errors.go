package wire

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/fsroot"
)

// ErrReadOnly is the cause of a write refused by a read-only export.
var ErrReadOnly = errors.New("the export is read-only")

// ErrResp is the response to request id that failed with err, its kind
// set from what err is (KindNotFound, KindEscape, ...), so that the peer
// can tell a missing file from a refused one.
func ErrResp(id uint64, err error) *Resp {
	r := &Resp{ID: id, Err: err.Error()}
	switch {
	case errors.Is(err, fsroot.ErrEscape):
		r.Kind = KindEscape
	case errors.Is(err, fs.ErrNotExist):
		r.Kind = KindNotFound
	case errors.Is(err, ErrReadOnly):
		r.Kind = KindReadOnly
	case errors.Is(err, syscall.ENOSPC):
		r.Kind = KindSpace
	}
	switch exitcode.Code(err) {
	case exitcode.Usage:
		if r.Kind == "" {
			r.Kind = KindUsage
		}
	case exitcode.Peer:
		r.Kind = KindPeer
	case exitcode.Refused:
		r.Kind = KindRefused
	case exitcode.MaxTransfer:
		r.Kind = KindMaxTransfer
	}
	return r
}
