package receive

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/idmap"
	"github.com/xfer-io/xfer/transfer/wire"
)

// ownerPolicy decides which owners and groups a receiver gives what
// arrives, and counts, for one report per run, what it could not keep.
// Names are mapped to this machine's ids (an unknown name falls back to
// the sender's number, as rsync does); as root every owner is kept,
// otherwise only a group the process is a member of (its own uid it has
// anyway).
type ownerPolicy struct {
	// allowed: owners may be set at all (a local copy; a server run with
	// --allow-owners). devices: device files may be created.
	allowed bool
	devices bool
	root    bool            // running as root: any owner, any device
	groups  map[uint32]bool // the groups an unprivileged process may give

	names idmap.Map // the names of owners and groups, as this machine's ids

	mu       sync.Mutex
	notKept  int64
	reason   string
	specials int64
	sreason  string
}

// newOwnerPolicy is the policy of a receiver whose owners may be set
// (allowed) and devices created (devices) when privilege allows.
func newOwnerPolicy(allowed, devices bool) *ownerPolicy {
	p := &ownerPolicy{allowed: allowed, devices: devices, root: os.Geteuid() == 0,
		groups: map[uint32]bool{uint32(os.Getegid()): true}}
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			p.groups[uint32(g)] = true
		}
	}
	return p
}

// ids returns the uid and gid to give an entry asked to have o (-1:
// leave it), and records what cannot be kept.
func (p *ownerPolicy) ids(o *wire.Owner) (uid, gid int) {
	if o == nil {
		return -1, -1
	}
	if !p.allowed {
		p.miss("the server does not allow it (xfer serve --allow-owners)")
		return -1, -1
	}
	uid, gid = int(o.Uid), int(o.Gid)
	if !o.Numeric && o.User != "" {
		if id, ok := p.names.Uid(o.User); ok {
			uid = int(id)
		}
	}
	if !o.Numeric && o.Group != "" {
		if id, ok := p.names.Gid(o.Group); ok {
			gid = int(id)
		}
	}
	if p.root {
		return uid, gid
	}
	missed := false
	if uid != os.Geteuid() {
		uid, missed = -1, true
	}
	if !p.groups[uint32(gid)] {
		gid, missed = -1, true
	}
	if missed {
		p.miss("not running as root")
	}
	return uid, gid
}

func (p *ownerPolicy) miss(reason string) {
	p.mu.Lock()
	p.notKept++
	if p.reason == "" {
		p.reason = reason
	}
	p.mu.Unlock()
}

// failed records an owner the receiver tried and failed to set.
func (p *ownerPolicy) failed(err error) { p.miss(fsroot.Reason(err).Error()) }

// mayCreate says whether a special file of kind s may be created here,
// and records it when not.
func (p *ownerPolicy) mayCreate(s fsroot.Special) bool {
	if !s.IsDevice() {
		return true
	}
	why := ""
	switch {
	case !p.devices:
		why = "the server does not allow it (xfer serve --allow-devices)"
	case !p.root:
		why = "not running as root"
	}
	if why == "" {
		return true
	}
	p.mu.Lock()
	p.specials++
	if p.sreason == "" {
		p.sreason = why
	}
	p.mu.Unlock()
	return false
}

// take returns and resets what was not kept since the last call (nil:
// everything was).
func (p *ownerPolicy) take() *wire.OwnerReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.notKept == 0 && p.specials == 0 {
		return nil
	}
	rep := &wire.OwnerReport{NotKept: p.notKept, Reason: p.reason, Specials: p.specials, SpecialsReason: p.sreason}
	p.notKept, p.reason, p.specials, p.sreason = 0, "", 0, ""
	return rep
}

// chownFd gives the open file fd the owner o asks for; chowned says
// whether it changed anything (a set-id mode must then be set again).
func (r *Receiver) chownFd(fd int, o *wire.Owner) (chowned bool) {
	uid, gid := r.owners.ids(o)
	if uid < 0 && gid < 0 {
		return false
	}
	if err := ignoringEINTR(func() error { return unix.Fchown(fd, uid, gid) }); err != nil {
		r.owners.failed(err)
		return false
	}
	return true
}

// chownPath gives rel (never following a final symlink) the owner o asks for.
func (r *Receiver) chownPath(rel string, o *wire.Owner) (chowned bool) {
	uid, gid := r.owners.ids(o)
	if uid < 0 && gid < 0 {
		return false
	}
	if err := r.root.Lchown(rel, uid, gid); err != nil {
		r.owners.failed(err)
		return false
	}
	return true
}

// TakeOwners returns what the receiver could not keep of owners and
// special files since the last call (nil: everything asked for).
func (r *Receiver) TakeOwners() *wire.OwnerReport { return r.owners.take() }

// chownPinned gives the pinned inode the owner o asks for.
func (r *Receiver) chownPinned(pin *fsroot.Pinned, o *wire.Owner) {
	uid, gid := r.owners.ids(o)
	if uid < 0 && gid < 0 {
		return
	}
	if err := pin.Chown(uid, gid); err != nil {
		r.owners.failed(err)
	}
}

// special creates a fifo, socket or device as op asks, with its owner,
// mode and mtime, in place of what stands at its path. A device this
// receiver may not create is counted for the run's one notice instead.
func (r *Receiver) special(op wire.MetaOp) string {
	if op.Special == fsroot.SpecialNone || op.Special > fsroot.SpecialBlock || op.Mode > 07777 {
		return fmt.Sprintf("create %s: not a special file", op.Path)
	}
	if !r.owners.mayCreate(op.Special) {
		return ""
	}
	if msg := r.mkParent(op.Path); msg != "" {
		return msg
	}
	mode := r.peer.fileMode(op.Mode)
	part, err := freshName(op.Path, func(name string) error { return r.root.Mknod(name, op.Special, 0o600, op.Rdev) })
	if err != nil {
		return fsroot.Describe("create "+op.Special.String(), op.Path, err)
	}
	r.chownPath(part, op.Owner)
	if err := r.root.Chmod(part, mode); err != nil {
		r.root.Remove(part)
		return fsroot.Describe("chmod", op.Path, err)
	}
	return r.settle(part, op)
}
