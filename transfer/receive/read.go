package receive

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// Read reads up to a.Count bytes of the regular file p (beneath the bound
// root) from a.Offset: what OpRead answers, and what `xfer cat` reads of
// a local tree.
func (h *Handler) Read(p string, a wire.ReadArgs) (wire.ReadResult, error) {
	if a.Offset < 0 || a.Count < 1 || a.Count > wire.MaxRead {
		return wire.ReadResult{}, fmt.Errorf("read %s: offset %d and count %d out of range (count 1 to %d)", p, a.Offset, a.Count, wire.MaxRead)
	}
	f, info, err := h.openRegular("read", p)
	if err != nil {
		return wire.ReadResult{}, err
	}
	defer f.Close()
	res := wire.ReadResult{Size: info.Size}
	if a.Offset >= info.Size {
		res.EOF = true
		return res, nil
	}
	buf := make([]byte, min(a.Count, info.Size-a.Offset))
	n, err := f.ReadAt(buf, a.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return wire.ReadResult{}, fmt.Errorf("read %s: %w", p, ReadErr(err))
	}
	res.Data = buf[:n]
	res.EOF = a.Offset+int64(n) >= info.Size || errors.Is(err, io.EOF)
	return res, nil
}

// RegisterReads offers OpRead on s. A server offers it to its clients
// (not to ticket sessions, which only deliver); a client serving its own
// destination for a pull does not, so a source server cannot read what
// that directory already holds.
func (h *Handler) RegisterReads(s *session.Session) {
	s.Handle(wire.OpRead, func(r *wire.Req) { h.serveRead(s, r) })
}

// openRegular opens the regular file p beneath the bound root for op
// (hash, read), with errors that name both.
func (h *Handler) openRegular(op, p string) (*os.File, fsroot.Info, error) {
	root := h.Tree()
	if root == nil {
		return nil, fsroot.Info{}, fmt.Errorf("%s %s: %w", op, p, os.ErrNotExist)
	}
	// O_NONBLOCK: a FIFO at p must not hang the session in open(2).
	f, err := root.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fsroot.Info{}, fmt.Errorf("%s %s: %w", op, p, fsroot.Reason(err))
	}
	info, err := fsroot.InfoFromFile(f)
	if err == nil && info.Type != fsroot.TypeFile {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, fsroot.Info{}, fmt.Errorf("%s %s: %w", op, p, err)
	}
	return f, info, nil
}

// serveRead answers OpRead.
func (h *Handler) serveRead(s *session.Session, r *wire.Req) {
	if r.Read == nil {
		s.Reply(&wire.Resp{ID: r.ID, Err: "read request without arguments", Kind: wire.KindUsage})
		return
	}
	p, err := h.resolve(r.Path)
	if err != nil {
		s.Reply(wire.ErrResp(r.ID, err))
		return
	}
	args := *r.Read
	go func() {
		res, err := h.Read(p, args)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(&wire.Resp{ID: r.ID, Read: &res})
	}()
}
