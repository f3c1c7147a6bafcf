package send

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// xattrPass state of a run with -X or -A: the source files and
// directories whose attributes the destination must match, gathered as
// the diff visits them, and what the destination could not keep (told
// once, at the end).
type xattrPass struct {
	scope wire.XattrScope
	paths pathList
	// notKept counts attributes the destination could not store; first
	// is the first of them, with why.
	notKept int
	entries int
	first   string
}

// xattrScope is the run's scope of extended attributes.
func (e *engine) xattrScope() wire.XattrScope {
	return wire.XattrScope{Xattrs: e.opt.Xattrs, ACLs: e.opt.ACLs}
}

// noteXattrs records a source entry whose attributes the pass sends.
func (e *engine) noteXattrs(op plan.Op) error {
	if !e.xattrScope().Any() || e.opt.Shard != nil || e.opt.DryRun {
		return nil
	}
	switch op.Kind {
	case plan.OpDelete:
		return nil
	case plan.OpSkip:
		if op.Reason == plan.ReasonUnsupported {
			return nil
		}
	}
	if t := op.Src.Type; t != plan.TypeFile && t != plan.TypeDir {
		return nil
	}
	return e.xattrs.paths.add(op.Src.Path)
}

// syncXattrs makes the destination's extended attributes match the
// source's for every entry noted, in batches, after the data is in and
// before the directories get their final modes.
func (e *engine) syncXattrs(srcTop string) error {
	x := &e.xattrs
	defer x.paths.close()
	if x.paths.len() == 0 {
		return nil
	}
	x.scope = e.xattrScope()
	if sup := e.dst.XattrSupport(); sup != nil {
		var lost []string
		if x.scope.Xattrs && !sup.User {
			x.scope.Xattrs, lost = false, append(lost, "extended attributes")
		}
		if x.scope.ACLs && !sup.ACLs {
			x.scope.ACLs, lost = false, append(lost, "ACLs")
		}
		if len(lost) > 0 {
			e.sink.Emit(progress.Event{Event: progress.KindNotice,
				Msg: fmt.Sprintf("%s not kept: the destination's file system does not support them", strings.Join(lost, " and "))})
		}
		if !x.scope.Any() {
			return nil
		}
	}
	privileged := os.Geteuid() == 0
	keep := func(name string) bool { return x.scope.Keeps(name, privileged) }
	var sets []wire.XattrSet
	var rels []string // the entries of sets, relative to the source
	var bytes int
	flush := func() error {
		if len(sets) == 0 {
			return nil
		}
		res, err := e.dst.Xattrs(e.ctx, x.scope, sets)
		if err != nil {
			return fmt.Errorf("extended attributes: %w", err)
		}
		for i, r := range res {
			e.xattrResult(rels[i], r)
		}
		sets, rels, bytes = nil, nil, 0
		return nil
	}
	err := x.paths.each(func(p string) error {
		if err := e.ctx.Err(); err != nil {
			return context.Cause(e.ctx)
		}
		attrs, size, err := readXattrs(e.src, joinTop(srcTop, e.srcRel(p)), keep)
		if err != nil {
			e.fileError(displayPath(p), err.Error())
			return nil
		}
		if size > wire.MaxXattrSetBytes {
			e.fileError(displayPath(p), fmt.Sprintf("extended attributes of %d bytes: more than xfer carries for one entry (%d); not kept", size, wire.MaxXattrSetBytes))
			return nil
		}
		if bytes+size > 2*wire.MaxXattrSetBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		sets = append(sets, wire.XattrSet{Path: joinTop(e.dstPath, p), Attrs: attrs})
		rels = append(rels, p)
		bytes += size
		if len(sets) >= wire.MaxXattrSets {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	if x.notKept > 0 {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("extended attributes: %d not kept on %d entries at the destination (first: %s)", x.notKept, x.entries, x.first)})
	}
	return nil
}

// xattrResult counts the destination's answer for the entry at p (relative
// to the source).
func (e *engine) xattrResult(p string, r wire.XattrResult) {
	x := &e.xattrs
	if r.Err != "" {
		e.fileError(displayPath(p), r.Err)
		return
	}
	if r.Changed {
		e.emit(progress.Event{Event: progress.KindXattrs, Path: displayPath(p)})
	}
	if len(r.NotKept) > 0 {
		if x.first == "" {
			x.first = fmt.Sprintf("%s on %s: %s", r.NotKept[0], displayPath(p), r.NotKeptWhy)
		}
		x.notKept += len(r.NotKept)
		x.entries++
	}
}

// readXattrs reads the attributes keep accepts of the entry at p beneath
// src, and their size in bytes (names and values).
func readXattrs(src *fsroot.Root, p string, keep func(string) bool) ([]wire.Xattr, int, error) {
	pin, err := src.Pin(p)
	if err != nil {
		return nil, 0, fmt.Errorf("extended attributes of %s: %w", displayPath(p), err)
	}
	defer pin.Close()
	xs, err := pin.Xattrs(keep)
	if err != nil {
		return nil, 0, err
	}
	out := make([]wire.Xattr, len(xs))
	size := 0
	for i, a := range xs {
		out[i] = wire.Xattr{Name: a.Name, Value: a.Value}
		size += len(a.Name) + len(a.Value)
	}
	return out, size, nil
}

// joinTop is p beneath top, where "" is top itself.
func joinTop(top, p string) string {
	if p == "" {
		return top
	}
	return plan.Join(top, p)
}
