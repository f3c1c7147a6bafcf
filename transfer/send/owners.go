package send

import (
	"fmt"

	"github.com/xfer-io/xfer/internal/plural"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// keepsOwners says whether the run sends owners and groups.
func (e *engine) keepsOwners() bool { return e.opt.Owners != wire.OwnersNo && e.opt.Shard == nil }

// ownerOf is the owner the destination copy of s is to have (nil: the
// run does not keep owners).
func (e *engine) ownerOf(s plan.Entry) *wire.Owner {
	if !e.keepsOwners() {
		return nil
	}
	o := &wire.Owner{Uid: s.Uid, Gid: s.Gid, Numeric: e.opt.NumericIDs}
	if !o.Numeric {
		o.User = e.names.UserName(s.Uid)
		o.Group = e.names.GroupName(s.Gid)
	}
	return o
}

// special queues the creation of a fifo, socket or device.
func (e *engine) special(op plan.Op, dp string) error {
	s := op.Src
	return e.addMeta(op, wire.MetaOp{Op: "special", Path: dp, Mode: s.Mode, MtimeNs: s.MtimeNs, Special: s.Special, Rdev: s.Rdev,
		Owner: e.ownerOf(s), ReplaceDir: e.opt.ReplaceDirs})
}

// reportOwners says once per run what the destination could not keep:
// the special files it skipped, and (with --owners yes) the owners and
// groups it left as its own.
func (e *engine) reportOwners(rep *wire.OwnerReport) {
	if n := e.unsupported.Load(); n > 0 {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: "skipped " + plural.Of(n, "special file") + " (fifos, sockets, devices): not copied with --specials=false"})
	}
	if rep == nil {
		return
	}
	if rep.Specials > 0 {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("skipped %s: the destination cannot create them (%s)", plural.Of(rep.Specials, "device file"), rep.SpecialsReason)})
	}
	if rep.NotKept > 0 && e.opt.Owners == wire.OwnersYes {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("owner or group of %s not kept: %s", plural.Of(rep.NotKept, "entry"), rep.Reason)})
	}
}
