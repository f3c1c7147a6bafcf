package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// OpKind says what an Op does at the destination.
type OpKind uint8

// Operation kinds.
const (
	OpMkdir    OpKind = iota + 1 // create a directory (or keep an existing one and fix its attributes)
	OpPut                        // transfer a regular file
	OpSymlink                    // create or replace a symlink
	OpDelete                     // remove an entry (recursively for directories)
	OpSetAttrs                   // content is current; fix mode and mtime
	OpSkip                       // nothing to do (up to date, or a type xfer does not transfer)
	OpSpecial                    // create or replace a fifo, socket or device (DiffOptions.Specials)
)

func (k OpKind) String() string {
	switch k {
	case OpMkdir:
		return "mkdir"
	case OpPut:
		return "put"
	case OpSymlink:
		return "symlink"
	case OpDelete:
		return "delete"
	case OpSetAttrs:
		return "setattrs"
	case OpSkip:
		return "skip"
	case OpSpecial:
		return "special"
	}
	return "unknown"
}

// Op is one step of a plan.
type Op struct {
	Kind OpKind
	Src  Entry  // the source entry (for OpDelete: the destination entry)
	Dst  *Entry // the destination entry when one exists at the same path
	// Replace is set when an entry of another type stands at the path and
	// must be removed first.
	Replace bool
	Reason  string // why: new, size, mtime, checksum, type, target, mode, owner, device, unsupported, extra, newer, exists
}

// DiffOptions tune Diff.
type DiffOptions struct {
	// Checksum compares file content by digest instead of size+mtime.
	Checksum bool
	// Delete emits OpDelete for destination entries missing at the source.
	Delete bool
	// Owners compares owners and groups (by number): an entry whose
	// content is current but whose owner differs gets OpSetAttrs "owner".
	Owners bool
	// Specials plans fifos, sockets and devices as OpSpecial; without it
	// they are OpSkip "unsupported".
	Specials bool
	// DeleteExcluded (with Delete, through Filter.Diff): destination
	// entries the filter rules exclude are deleted too (rsync
	// --delete-excluded).
	DeleteExcluded bool
	// Update skips a regular file whose destination copy has a newer
	// mtime (rsync -u; Reason "newer").
	Update bool
	// IgnoreExisting skips every source entry but a directory that
	// exists at the destination, whatever its type or content (rsync
	// --ignore-existing; Reason "exists").
	IgnoreExisting bool
	// SizeOnly compares regular files by size alone: same size means up
	// to date, though a different mtime or mode is still set (rsync
	// --size-only).
	SizeOnly bool
	// SrcDigest returns the digest of a source file; used with Checksum when
	// the source lister did not supply digests.
	SrcDigest func(ctx context.Context, e Entry) ([]byte, error)
	// DstDigest likewise for the destination.
	DstDigest func(ctx context.Context, e Entry) ([]byte, error)
	// Unreadable is called once for each entry a lister marked
	// unreadable (Entry.Err) that the diff meets: dest is false for the
	// source. An error from it stops the diff. An unreadable source
	// directory is still created (its contents are unknown: nothing
	// beneath it at the destination is compared or deleted); an
	// unreadable source symlink is left alone. nil: not reported.
	Unreadable func(e Entry, dest bool) error
}

// Diff merge-joins two listings in Compare order and calls emit with one Op
// per source entry (and per extra destination entry when opt.Delete). Its
// memory does not depend on the size of either tree.
func Diff(ctx context.Context, src, dst Lister, opt DiffOptions, emit func(Op) error) error {
	s, sok, err := next(ctx, src, "source")
	if err != nil {
		return err
	}
	d, dok, err := next(ctx, dst, "destination")
	if err != nil {
		return err
	}
	// skipDst drops destination entries beneath a path that an op replaces
	// or deletes wholesale.
	skipDst := ""
	advanceDst := func() error {
		for {
			d, dok, err = next(ctx, dst, "destination")
			if err != nil || !dok || skipDst == "" || !strings.HasPrefix(d.Path, skipDst+"/") {
				return err
			}
		}
	}
	for sok || dok {
		var c int
		switch {
		case !dok:
			c = -1
		case !sok:
			c = 1
		default:
			c = Compare(s.Path, d.Path)
		}
		switch {
		case c < 0: // only at the source
			if err := report(opt, s, false); err != nil {
				return err
			}
			if s.Err == "" || s.Type == TypeDir {
				if err := emit(newOp(s, opt)); err != nil {
					return err
				}
			}
			if s, sok, err = next(ctx, src, "source"); err != nil {
				return err
			}
		case c > 0: // only at the destination
			skipDst = ""
			if err := report(opt, d, true); err != nil {
				return err
			}
			if opt.Delete {
				if err := emit(Op{Kind: OpDelete, Src: d, Reason: "extra"}); err != nil {
					return err
				}
				if d.Type == TypeDir {
					skipDst = d.Path
				}
			}
			if err := advanceDst(); err != nil {
				return err
			}
		default:
			dd := d
			if s.Err != "" {
				err = report(opt, s, false) // one report for the path, whatever the destination says
			} else {
				err = report(opt, dd, true)
			}
			if err != nil {
				return err
			}
			skipDst = ""
			if s.Err == "" || s.Type == TypeDir {
				op, err := compareEntries(ctx, s, &dd, opt)
				if err != nil {
					return err
				}
				if err := emit(op); err != nil {
					return err
				}
				if dd.Type == TypeDir && s.Type != TypeDir {
					skipDst = dd.Path // the directory goes with its contents
				}
			}
			if s.Err != "" {
				skipDst = dd.Path // what lies beneath is unknown at the source: keep it
			}
			if s, sok, err = next(ctx, src, "source"); err != nil {
				return err
			}
			if err := advanceDst(); err != nil {
				return err
			}
		}
	}
	return nil
}

// report passes an unreadable entry to opt.Unreadable.
func report(opt DiffOptions, e Entry, dest bool) error {
	if e.Err == "" || opt.Unreadable == nil {
		return nil
	}
	return opt.Unreadable(e, dest)
}

func next(ctx context.Context, l Lister, side string) (Entry, bool, error) {
	e, err := l.Next(ctx)
	if errors.Is(err, io.EOF) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("listing %s: %w", side, err)
	}
	return e, true, nil
}

func newOp(s Entry, opt DiffOptions) Op {
	switch s.Type {
	case TypeDir:
		return Op{Kind: OpMkdir, Src: s, Reason: "new"}
	case TypeFile:
		return Op{Kind: OpPut, Src: s, Reason: "new"}
	case TypeSymlink:
		return Op{Kind: OpSymlink, Src: s, Reason: "new"}
	}
	if opt.Specials && s.Special != fsroot.SpecialNone {
		return Op{Kind: OpSpecial, Src: s, Reason: "new"}
	}
	return Op{Kind: OpSkip, Src: s, Reason: ReasonUnsupported}
}

// ownerDiffers reports whether opt compares owners and s and d differ.
func ownerDiffers(s Entry, d *Entry, opt DiffOptions) bool {
	return opt.Owners && (s.Uid != d.Uid || s.Gid != d.Gid)
}

// compareSpecial compares a fifo, socket or device with what stands at
// its path: one of the same kind (and device number) keeps its inode.
func compareSpecial(s Entry, d *Entry, opt DiffOptions) Op {
	if !opt.Specials || s.Special == fsroot.SpecialNone {
		return Op{Kind: OpSkip, Src: s, Dst: d, Reason: ReasonUnsupported}
	}
	switch {
	case d.Type != TypeOther || d.Special != s.Special:
		return Op{Kind: OpSpecial, Src: s, Dst: d, Replace: true, Reason: "type"}
	case s.Special.IsDevice() && s.Rdev != d.Rdev:
		return Op{Kind: OpSpecial, Src: s, Dst: d, Replace: true, Reason: "device"}
	case s.MtimeNs != d.MtimeNs:
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "mtime"}
	case s.Mode != d.Mode:
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "mode"}
	case ownerDiffers(s, d, opt):
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "owner"}
	}
	return Op{Kind: OpSkip, Src: s, Dst: d}
}

// ReasonUnsupported is the Reason of an OpSkip for an entry of a type xfer
// does not transfer (TypeOther): the one Reason that code branches on.
const ReasonUnsupported = "unsupported"

// Reasons of an OpSkip that a selection flag made: the destination copy
// is newer (--update) or exists (--ignore-existing).
const (
	ReasonNewer  = "newer"
	ReasonExists = "exists"
)

func compareEntries(ctx context.Context, s Entry, d *Entry, opt DiffOptions) (Op, error) {
	if opt.IgnoreExisting && s.Type != TypeDir {
		return Op{Kind: OpSkip, Src: s, Dst: d, Reason: ReasonExists}, nil
	}
	if s.Type == TypeOther {
		return compareSpecial(s, d, opt), nil
	}
	if s.Type != d.Type {
		op := newOp(s, opt)
		op.Dst, op.Replace, op.Reason = d, true, "type"
		return op, nil
	}
	switch s.Type {
	case TypeDir:
		return Op{Kind: OpMkdir, Src: s, Dst: d, Reason: "exists"}, nil
	case TypeSymlink:
		if s.Target != d.Target {
			return Op{Kind: OpSymlink, Src: s, Dst: d, Replace: true, Reason: "target"}, nil
		}
		if ownerDiffers(s, d, opt) {
			return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "owner"}, nil
		}
		return Op{Kind: OpSkip, Src: s, Dst: d}, nil
	}
	// Regular files.
	if opt.Update && d.MtimeNs > s.MtimeNs {
		return Op{Kind: OpSkip, Src: s, Dst: d, Reason: ReasonNewer}, nil
	}
	if s.Size != d.Size {
		return Op{Kind: OpPut, Src: s, Dst: d, Reason: "size"}, nil
	}
	if opt.Checksum {
		// A file that cannot be hashed is transferred: reading it then
		// reports why (source), or it is replaced (destination).
		sd, err := digestOf(ctx, s, opt.SrcDigest)
		if err != nil {
			if ctx.Err() != nil {
				return Op{}, fmt.Errorf("checksum of source %s: %w", s.Path, err)
			}
			return Op{Kind: OpPut, Src: s, Dst: d, Reason: "checksum"}, nil
		}
		dd, err := digestOf(ctx, *d, opt.DstDigest)
		if err != nil {
			if ctx.Err() != nil {
				return Op{}, fmt.Errorf("checksum of destination %s: %w", d.Path, err)
			}
			return Op{Kind: OpPut, Src: s, Dst: d, Reason: "checksum"}, nil
		}
		if !bytes.Equal(sd, dd) {
			return Op{Kind: OpPut, Src: s, Dst: d, Reason: "checksum"}, nil
		}
	} else if !opt.SizeOnly && s.MtimeNs != d.MtimeNs {
		return Op{Kind: OpPut, Src: s, Dst: d, Reason: "mtime"}, nil
	}
	if s.MtimeNs != d.MtimeNs {
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "mtime"}, nil
	}
	if s.Mode != d.Mode {
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "mode"}, nil
	}
	if ownerDiffers(s, d, opt) {
		return Op{Kind: OpSetAttrs, Src: s, Dst: d, Reason: "owner"}, nil
	}
	return Op{Kind: OpSkip, Src: s, Dst: d}, nil
}

func digestOf(ctx context.Context, e Entry, f func(context.Context, Entry) ([]byte, error)) ([]byte, error) {
	if len(e.Digest) > 0 {
		return e.Digest, nil
	}
	if f == nil {
		return nil, errors.New("no digest available")
	}
	return f(ctx, e)
}
