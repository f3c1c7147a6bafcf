package send

import (
	"context"
	"fmt"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
)

// printPlan is what a dry run does with each op of the plan instead of
// carrying it out: it reports op as the real run reports carrying it out,
// the same events, counted alike, each with the action a plan line shows
// (create, update, link, mkdir, symlink, delete). Nothing is sent and
// nothing at the destination changes.
func (e *engine) printPlan(op plan.Op) error {
	if err := e.ctx.Err(); err != nil {
		return context.Cause(e.ctx)
	}
	s := op.Src
	ev := progress.Event{Path: s.Path, DryRun: true}
	switch op.Kind {
	case plan.OpPut:
		ev.Event, ev.Action, ev.Bytes = progress.KindTransfer, "create", s.Size
		if op.Dst != nil {
			ev.Action = "update"
		}
		if first, link := e.anchorFor(op); link {
			ev.Action, ev.Bytes, ev.Msg = "link", 0, "hard link to "+plan.Join(e.dstPath, first)
		}
		e.tally.AddPlanned(1, ev.Bytes)
	case plan.OpMkdir:
		if op.Dst != nil && !op.Replace {
			return nil // attributes only, as the real run does it
		}
		ev.Event, ev.Action = progress.KindMkdir, "mkdir"
	case plan.OpSymlink:
		ev.Event, ev.Action = progress.KindSymlink, "symlink"
	case plan.OpDelete:
		// Held back, as the real run holds its deletions back until the
		// transfers are done: printDeletes reports them then, unless the
		// run would not make them (errors, a guard).
		return e.deletes.add(s.Path)
	default: // OpSkip, OpSetAttrs: counted as unchanged, unless joined to a group
		if first, link := e.anchorFor(op); link {
			ev.Event, ev.Action, ev.Msg = progress.KindTransfer, "link", "hard link to "+plan.Join(e.dstPath, first)
			e.tally.AddPlanned(1, 0)
			break
		}
		if op.Kind == plan.OpSkip && op.Reason == plan.ReasonUnsupported {
			e.sink.Emit(progress.Event{Event: progress.KindNotice, Path: s.Path, Msg: "skipped: not a regular file, directory or symlink"})
		}
		e.tally.Record(progress.Event{Event: progress.KindSkip})
		return nil
	}
	e.emit(ev)
	return nil
}

// printDeletes ends a dry run as the real run ends: the deletions it
// held back are reported only if the real run would make them, which it
// does not after an error (a notice says so) or when a guard (deleteGuard)
// refuses them.
func (e *engine) printDeletes() error {
	n := e.deletes.len()
	if n == 0 {
		return nil
	}
	if e.errors.Load() > 0 {
		e.sink.Emit(progress.Event{Event: progress.KindNotice, DryRun: true,
			Msg: fmt.Sprintf("not deleting %d extra entries at the destination because there were errors", n)})
		return nil
	}
	if err := e.deleteGuard(int64(n)); err != nil {
		return err
	}
	return e.deletes.each(func(p string) error {
		e.emit(progress.Event{Event: progress.KindDelete, Action: "delete", Path: p, DryRun: true})
		return nil
	})
}
