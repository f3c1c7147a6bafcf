package send

import (
	"fmt"
	"os/user"
	"strconv"
	"sync"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// ownerNames maps the source's numeric owners and groups to their names,
// looked up once each, so that the receiver can map them to its own ids.
type ownerNames struct {
	mu     sync.Mutex
	users  map[uint32]string // "" for an id without a name
	groups map[uint32]string
}

func (n *ownerNames) name(cache *map[uint32]string, id uint32, find func(string) (string, error)) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, ok := (*cache)[id]; ok {
		return name
	}
	if *cache == nil {
		*cache = map[uint32]string{}
	}
	name, err := find(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		name = ""
	}
	(*cache)[id] = name
	return name
}

func userName(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func groupName(id string) (string, error) {
	g, err := user.LookupGroupId(id)
	if err != nil {
		return "", err
	}
	return g.Name, nil
}

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
		o.User = e.names.name(&e.names.users, s.Uid, userName)
		o.Group = e.names.name(&e.names.groups, s.Gid, groupName)
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
			Msg: fmt.Sprintf("skipped %d special files (fifos, sockets, devices): not copied with --specials=false", n)})
	}
	if rep == nil {
		return
	}
	if rep.Specials > 0 {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("skipped %d device files: the destination cannot create them (%s)", rep.Specials, rep.SpecialsReason)})
	}
	if rep.NotKept > 0 && e.opt.Owners == wire.OwnersYes {
		e.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("owner or group of %d entries not kept: %s", rep.NotKept, rep.Reason)})
	}
}
