package receive

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/internal/metrics"
)

// receiver writes what a sender delivers into a tree: files land in hidden
// partial files beside their targets, every chunk is checked against its
// BLAKE3 digest before it is written, and a file is renamed into place only
// once its whole-file digest matches the sender's and its data is durable.
// One receiver serves one session; its root is shared with others.
type Receiver struct {
	root     *fsroot.Root
	noFsync  bool
	readOnly bool
	// prefix is the export name that every path from the peer starts with
	// ("" when the server serves a single tree).
	prefix string
	// peer, when set, is what a server lets a peer make of its tree
	// (modes narrowed, no writes through hard links); nil in a local copy,
	// which keeps modes exactly as the source has them.
	peer *peerPolicy
	// within confines a ticket session to its destination directory
	// (beneath the root; "" for no confinement). Set before use.
	within string
	// m counts what arrives, labelled with the session's transport.
	m         *metrics.Metrics
	transport string
	// maxOpen bounds the large files held open at once (0: no bound), so
	// that one session cannot spend the server's file descriptors.
	maxOpen int
	// fds bounds the unnamed files batches hold open (FDBudget).
	fds *FDBudget
	// owners decides the owners and groups given to what arrives, and
	// which special files may be created.
	owners *ownerPolicy

	mu     sync.Mutex
	files  map[uint64]*rfile
	failed map[uint64]string // files given up on, so late chunks get the reason
	dirs   dirAttrs          // directory attributes applied at finish
	// unlocked are read-only directories made writable for this run,
	// with their old modes (writable.go).
	unlocked []dirAttr
	// noTmpfile is set once the file system turned O_TMPFILE down;
	// updating while the last batch mostly replaced existing files.
	// made counts directories created on the way to arriving files.
	made      atomic.Int64
	noTmpfile atomic.Bool
	updating  atomic.Bool
}

type rfile struct {
	mu      sync.Mutex
	spec    wire.FileSpec
	f       *os.File
	part    string
	journal *os.File // indexes of chunks written and verified, for resume
	jname   string
	tree    *hashtree.Tree
	// have holds digests of chunks found in a partial file left by an
	// interrupted transfer, recomputed from the data on disk; the sender
	// adopts those that match its own.
	have map[int64]hashtree.Digest
	// done holds chunks a parked share of a split file wrote and verified
	// (final pass): already set in the tree, nothing to send or check.
	done map[int64]hashtree.Digest
	// leafSize is the leaf size the sender asked leaf digests for in
	// Adopt: patches (WritePatch) must use it; 0, none asked.
	leafSize int64
	failed   string
}

type dirAttr struct {
	path    string
	mode    uint32
	mtimeNs int64
	owner   *wire.Owner
}

// newReceiver writes into root with o's settings; readOnly and setid are
// the tree's, prefix is its export name ("" for a single tree).
func newReceiver(root *fsroot.Root, o Options, readOnly, setid bool, prefix string) *Receiver {
	r := &Receiver{root: root, noFsync: o.NoFsync, readOnly: readOnly, prefix: prefix,
		m: o.Metrics, transport: o.Transport, maxOpen: o.MaxOpen, fds: o.TempFiles,
		files: map[uint64]*rfile{}, failed: map[uint64]string{}}
	if r.fds == nil {
		r.fds = NewFDBudget()
	}
	r.owners = newOwnerPolicy(true, true)
	if o.Served {
		r.peer = &peerPolicy{umask: o.Umask, setid: setid}
		r.owners = newOwnerPolicy(o.AllowOwners, o.AllowDevices)
	}
	return r
}

// rel turns a path from the peer into a path beneath the root, refusing
// what lies outside the directory a ticket session is confined to.
func (r *Receiver) rel(p string) (string, error) {
	rel, err := stripExport(r.prefix, p)
	if err == nil && !beneathDir(rel, r.within) {
		return "", fmt.Errorf("path %q: %w", p, errOutsideTicket)
	}
	return rel, err
}

// stripExport removes the export name from the front of p and validates
// what remains.
func stripExport(prefix, p string) (string, error) {
	if err := wire.ValidRel(p); err != nil {
		return "", err
	}
	if prefix == "" {
		return p, nil
	}
	if p == prefix {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(p, prefix+"/"); ok {
		return rest, nil
	}
	return "", fmt.Errorf("path %q is outside export %q (a session uses one export)", p, prefix)
}

func (r *Receiver) Open(specs []wire.FileSpec) ([]string, [][][2]int64, [][]wire.AdoptChunk) {
	errs := make([]string, len(specs))
	haves := make([][][2]int64, len(specs))
	var done [][]wire.AdoptChunk
	for i, sp := range specs {
		if r.readOnly {
			errs[i] = fsroot.Describe("write", sp.Path, wire.ErrReadOnly)
			continue
		}
		rel, err := r.rel(sp.Path)
		if err != nil || rel == "" {
			errs[i] = fsroot.Describe("write", sp.Path, fsroot.ErrEscape)
			continue
		}
		shown := sp.Path
		sp.Path = rel
		if r.maxOpen > 0 {
			r.mu.Lock()
			n := len(r.files)
			r.mu.Unlock()
			if n >= r.maxOpen {
				errs[i] = fmt.Sprintf("write %s: too many files open in this session (the server allows %d at once)", shown, r.maxOpen)
				continue
			}
		}
		if hashtree.ValidChunkSize(sp.ChunkSize) != nil || sp.ChunkSize > wire.MaxChunkSize || sp.Size < 0 || sp.Mode > 07777 ||
			sp.Shares < 0 || sp.Shares > wire.MaxShards || sp.Share < 0 || sp.Share > sp.Shares {
			errs[i] = fmt.Sprintf("write %s: invalid file announcement", sp.Path)
			continue
		}
		sp.Mode = r.peer.fileMode(sp.Mode)
		rf, msg := r.create(sp)
		if msg != "" {
			errs[i] = strings.Replace(msg, rel, shown, 1)
			continue
		}
		r.mu.Lock()
		if old := r.files[sp.FID]; old != nil {
			r.mu.Unlock()
			r.discard(rf)
			errs[i] = fmt.Sprintf("write %s: file id %d already in use", sp.Path, sp.FID)
			continue
		}
		r.files[sp.FID] = rf
		delete(r.failed, sp.FID)
		r.mu.Unlock()
		haves[i] = rf.haveRanges()
		if len(rf.done) > 0 {
			if done == nil {
				done = make([][]wire.AdoptChunk, len(specs))
			}
			for idx, d := range rf.done {
				done[i] = append(done[i], wire.AdoptChunk{Index: idx, Digest: d.String()})
			}
		}
	}
	return errs, haves, done
}

// mkdirParents makes the directories on the way to a file that arrives
// before they were made (in a share of a cluster transfer, which leaves
// directories to the final pass), counting those it created.
func (r *Receiver) mkdirParents(dir string) error {
	n, err := r.root.MkdirAllCount(dir, 0o755)
	r.made.Add(int64(n))
	return err
}

// takeMade returns the directories mkdirParents created since the last
// call.
func (r *Receiver) TakeMade() int64 { return r.made.Swap(0) }
