package receive

// peerPolicy is what a server lets a peer make of its tree, in the manner
// of rsyncd: the server's umask narrows every mode a peer asks for, and
// set-uid and set-gid bits (and sticky bits on files) are dropped unless
// the export allows them. A nil policy keeps modes exactly (a local copy,
// made by the user's own process, like rsync -a).
type peerPolicy struct {
	// umask holds the permission bits (0777 at most) taken from every
	// file and directory a peer creates or changes.
	umask uint32
	// setid keeps set-uid, set-gid and sticky bits.
	setid bool
}

const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
)

// fileMode is the mode a file that a peer asks to have mode m gets.
func (p *peerPolicy) fileMode(m uint32) uint32 {
	return p.mode(m, modeSetuid|modeSetgid|modeSticky)
}

// dirMode is the mode a directory that a peer asks to have mode m gets
// (a sticky bit on a directory is kept: it restricts, not grants).
func (p *peerPolicy) dirMode(m uint32) uint32 {
	return p.mode(m, modeSetuid|modeSetgid)
}

// mode is m narrowed by the umask, without the bits of grants unless the
// policy keeps them.
func (p *peerPolicy) mode(m, grants uint32) uint32 {
	m &= 0o7777
	if p == nil {
		return m
	}
	m &^= p.umask & 0o777
	if !p.setid {
		m &^= grants
	}
	return m
}
