package wire

import (
	"encoding/json"
	"fmt"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
)

// Hello is the first frame on every connection, from the side that dialed.
type Hello struct {
	Proto      string   `json:"proto"` // always "xfer"
	Version    int      `json:"version"`
	Role       string   `json:"role"` // "control" or "data"
	Client     string   `json:"client,omitempty"`
	Transports []string `json:"transports,omitempty"` // control: usable here, in preference order
	Want       string   `json:"want,omitempty"`       // control: forced transport, or "auto"
	Streams    int      `json:"streams,omitempty"`    // control: data streams wanted
	Features   []string `json:"features,omitempty"`
	Session    string   `json:"session,omitempty"` // data: session it belongs to
	Stream     int      `json:"stream,omitempty"`  // data: index of the stream
	Proof      string   `json:"proof,omitempty"`   // data: HMAC proving knowledge of the session key
	Nonce      string   `json:"nonce,omitempty"`   // control: client nonce for the challenge-response
	Ticket     string   `json:"ticket,omitempty"`  // control: ticket id, for a delegated (third-party) session
	TLSData    *bool    `json:"tls_data,omitempty"`
	KX         string   `json:"kx,omitempty"` // control: X25519 key-exchange share, hex
	// NoVerify (control) asks for a session whose chunks are not checked
	// against their BLAKE3 digests on arrival (--verify=none); ignored
	// where data streams are outside TLS: there the verified digest is
	// what authenticates a chunk's bytes.
	NoVerify bool `json:"no_verify,omitempty"`
	// Xattrs (control) is what the dialing side can store where it
	// receives (-X, -A); nil: not said.
	Xattrs *XattrSupport `json:"xattrs,omitempty"`
}

// decodeHello parses and sanity-checks a hello frame from an unknown peer.
func DecodeHello(p []byte) (Hello, error) {
	var h Hello
	if err := json.Unmarshal(p, &h); err != nil {
		return h, fmt.Errorf("hello: %w", err)
	}
	if h.Proto != "xfer" {
		return h, fmt.Errorf("hello: not the xfer protocol")
	}
	if h.Stream < 0 || h.Stream > 1024 || h.Streams < 0 || h.Streams > 1024 || len(h.Transports) > 16 {
		return h, fmt.Errorf("hello: values out of range")
	}
	return h, nil
}

// AuthMsg carries a challenge-response proof (frames fAuth and fAuthOK).
type AuthMsg struct {
	Proof string `json:"proof"`
	Error string `json:"error,omitempty"`
	// RetryAfterMs > 0 marks Error as a passing refusal (server busy,
	// address shut out after failed logins): try again after that long.
	RetryAfterMs int64 `json:"retry_after_ms,omitempty"`
}

// Welcome answers a Hello.
type Welcome struct {
	Version         int      `json:"version"`
	Server          string   `json:"server,omitempty"`
	Session         string   `json:"session,omitempty"`
	Transport       string   `json:"transport,omitempty"`
	TransportReason string   `json:"transport_reason,omitempty"`
	Streams         int      `json:"streams,omitempty"`
	Features        []string `json:"features,omitempty"`
	Error           string   `json:"error,omitempty"`
	// RetryAfterMs > 0 marks Error as a passing refusal (server busy):
	// try again after that long.
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
	Auth         string `json:"auth,omitempty"`  // none or token
	Nonce        string `json:"nonce,omitempty"` // server nonce
	TLS          bool   `json:"tls,omitempty"`   // the control connection is TLS
	TLSData      bool   `json:"tls_data,omitempty"`
	KX           string `json:"kx,omitempty"` // X25519 key-exchange share, hex
	// Verify says whether the receivers of this session check every
	// chunk and small file against its BLAKE3 digest: always where data
	// streams are outside TLS, else as the client asked.
	Verify bool `json:"verify,omitempty"`
	// Xattrs is what the server's tree can store (-X, -A); nil: not
	// said (a server of several exports).
	Xattrs *XattrSupport `json:"xattrs,omitempty"`
	// Offers lists the transports the server would have accepted for
	// this session, in its preference order: the candidates a client's
	// `--proto auto` may measure against each other. Nil from a server
	// that predates it.
	Offers []string `json:"offers,omitempty"`
	// Capped says the server paces its data streams (serve --bwlimit):
	// a client's probe would measure the cap, not the transports.
	Capped bool `json:"capped,omitempty"`
}

// Request operations.
const (
	OpList   = "list"   // stream entries beneath Path
	OpMore   = "more"   // credit for one more entry batch of request ID
	OpStat   = "stat"   // one entry
	OpHash   = "hash"   // digest of one file
	OpMeta   = "meta"   // batch of mkdir/symlink/delete/remove/setattrs/special
	OpOpen   = "open"   // create partial files for large transfers
	OpCommit = "commit" // verify, flush and rename files into place
	OpFinish = "finish" // apply directory attributes, flush renames
	OpJob    = "job"    // run a transfer from the peer's tree (pull, third party)
	OpMkroot = "mkroot" // make sure a destination directory exists
	OpCancel = "cancel" // cancel a running request
	OpTicket = "ticket" // issue a ticket for a third-party session into Path
	OpAdopt  = "adopt"  // keep chunks a resumed partial file already holds
)

// Req is a control request. Only the fields its Op needs are set.
type Req struct {
	ID       uint64 `json:"id"`
	Op       string `json:"op"`
	Path     string `json:"path,omitempty"`
	Ref      uint64 `json:"ref,omitempty"` // more/cancel: the request it refers to
	Checksum bool   `json:"checksum,omitempty"`
	Checkers int    `json:"checkers,omitempty"` // list: directories the walk reads at once
	// Shallow (list) lists the directory alone: its direct entries,
	// nothing beneath them.
	Shallow bool         `json:"shallow,omitempty"`
	Meta    []MetaOp     `json:"meta,omitempty"`
	Files   []FileSpec   `json:"files,omitempty"`
	Commits []CommitSpec `json:"commits,omitempty"`
	FID     uint64       `json:"fid,omitempty"`
	Lock    bool         `json:"lock,omitempty"`
	Adopt   []AdoptChunk `json:"adopt,omitempty"`
	// LeafSize (adopt) asks for the leaf digests of the offered chunks
	// that do not match (Resp.Leaves), cut into leaves of that many bytes
	// (see hashtree.ValidLeafSize), so that only the leaves that differ
	// are sent (MsgPatch). 0, or a peer that does not offer it: whole
	// chunks.
	LeafSize int64    `json:"leaf_size,omitempty"`
	Job      *JobSpec `json:"job,omitempty"`
	// CAS and Bench are the arguments of the store's and the
	// benchmark's operations.
	CAS   *CASArgs   `json:"cas,omitempty"`
	Bench *BenchArgs `json:"bench,omitempty"`
	// Xattrs and XattrScope are the arguments of OpXattrs.
	Xattrs     []XattrSet  `json:"xattrs,omitempty"`
	XattrScope *XattrScope `json:"xattr_scope,omitempty"`
	// Read is the argument of OpRead.
	Read *ReadArgs `json:"read,omitempty"`
}

// Resp answers a Req with the same ID.
type Resp struct {
	ID      uint64            `json:"id"`
	Err     string            `json:"err,omitempty"`
	Kind    string            `json:"kind,omitempty"` // error class: notfound, escape, readonly, usage, peer, nospace, refused
	Errs    []string          `json:"errs,omitempty"` // per item of a batch, "" for success
	Entry   *plan.Entry       `json:"entry,omitempty"`
	Digest  string            `json:"digest,omitempty"`
	Summary *progress.Summary `json:"summary,omitempty"`
	Ticket  *SealedTicket     `json:"ticket,omitempty"`
	// Haves lists, per opened file, the chunk index ranges a partial file
	// from an interrupted transfer already holds.
	Haves [][][2]int64 `json:"haves,omitempty"`
	// Done lists, per opened file, chunks that the parked shares of a
	// split file already wrote and verified, with their digests.
	Done [][]AdoptChunk `json:"done,omitempty"`
	// Made (finish) counts the directories the receiver created on the
	// way to arriving files since the last finish.
	Made int64 `json:"made,omitempty"`
	// Owners (finish) reports owners, groups and special files the
	// receiver could not keep.
	Owners *OwnerReport `json:"owners,omitempty"`
	// Missing lists adopt candidates that did not match.
	Missing []int64 `json:"missing,omitempty"`
	// Leaves (adopt with LeafSize) holds, for missing chunks whose old
	// bytes the receiver holds, the digests of their leaves; a missing
	// chunk not listed is sent whole.
	Leaves []ChunkLeaves `json:"leaves,omitempty"`
	// CAS and Bench are the results of the store's and the benchmark's
	// operations.
	CAS   *CASResult  `json:"cas,omitempty"`
	Bench *BenchReply `json:"bench,omitempty"`
	// XattrResults answers OpXattrs, one per set.
	XattrResults []XattrResult `json:"xattr_results,omitempty"`
	// Read answers OpRead.
	Read *ReadResult `json:"read,omitempty"`
}

// CASArgs are the arguments of a cas.* request.
type CASArgs struct {
	IDs []cas.ID `json:"ids,omitempty"` // has
	ID  *cas.ID  `json:"id,omitempty"`  // get
	TID uint64   `json:"tid,omitempty"` // get: the transfer id the requester allocated
}

// CASResult is the result of a cas.* request.
type CASResult struct {
	Sizes []int64    `json:"sizes,omitempty"` // has: each object's size, -1 if absent
	Stats *cas.Stats `json:"stats,omitempty"` // stat
	Size  int64      `json:"size,omitempty"`  // get: the bytes sent
}

// BenchArgs are the arguments of a bench.* request.
type BenchArgs struct {
	Mode string  `json:"mode,omitempty"` // start: mem (default) or disk
	Path string  `json:"path,omitempty"` // start, disk: directory for the temporary file
	Size int64   `json:"size,omitempty"` // start, disk: message size (aligns the writes)
	Run  uint64  `json:"run,omitempty"`  // stop
	Sent []int64 `json:"sent,omitempty"` // stop: payload bytes sent per stream
	Msgs []int64 `json:"msgs,omitempty"` // stop: messages sent per stream
}

// BenchReply is the result of a bench.* request.
type BenchReply struct {
	Run      uint64  `json:"run,omitempty"`
	Bytes    []int64 `json:"bytes,omitempty"` // stop: payload bytes received per stream
	Msgs     []int64 `json:"msgs,omitempty"`  // stop: messages received per stream
	CPU      float64 `json:"cpu_s"`           // stop: the server's CPU seconds (user+system) during the run
	Elapsed  float64 `json:"elapsed_s"`       // stop: seconds from start to the last byte
	WriteErr string  `json:"write_err,omitempty"`
}

// AdoptChunk is the sender's digest of a chunk the receiver may already hold.
type AdoptChunk struct {
	Index  int64  `json:"i"`
	Digest string `json:"d"`
}

// ChunkLeaves are the leaf digests of one chunk the receiver holds old
// bytes of: Digests is their concatenation, 32 bytes per leaf, in order.
type ChunkLeaves struct {
	Index   int64  `json:"i"`
	Digests []byte `json:"d"`
}

// MetaOp is one metadata change at the destination.
type MetaOp struct {
	Op      string `json:"op"` // mkdir, symlink, link, delete (recursive), remove (a file, link or empty directory; never recursive), setattrs, special, backup
	Path    string `json:"path"`
	Mode    uint32 `json:"mode,omitempty"`
	MtimeNs int64  `json:"mtime,omitempty"`
	Target  string `json:"target,omitempty"`
	// ReplaceDir allows removing a directory tree that stands where a
	// non-directory must go (sync); without it that is an error (copy).
	ReplaceDir bool `json:"replace_dir,omitempty"`
	// Suffix and Keep are for Op "backup", which moves the entry at Path
	// aside to Target with Suffix appended to its name (a directory: each
	// entry beneath it, to the same path beneath Target, the directories
	// without the suffix), replacing an older backup there. Keep leaves a
	// regular file at Path (the backup is a hard link to it), for the
	// file about to replace it.
	Suffix string `json:"suffix,omitempty"`
	Keep   bool   `json:"keep,omitempty"`
	// Owner (mkdir, symlink, setattrs, special) is the owner and group
	// the entry is to have; nil: keep what the receiver gives it.
	Owner *Owner `json:"owner,omitempty"`
	// Special and Rdev (op special) say what to create: a fifo, a
	// socket, or a device with that number.
	Special fsroot.Special `json:"special,omitempty"`
	Rdev    uint64         `json:"rdev,omitempty"`
	// Unchanged (op remove) removes a regular file only if it still has
	// this size and mtime: a move removes the version it copied, never a
	// newer one; nil: whatever is there.
	Unchanged *Unchanged `json:"unchanged,omitempty"`
}

// Unchanged is the state a file must still be in to be removed.
type Unchanged struct {
	Size    int64 `json:"size"`
	MtimeNs int64 `json:"mtime"`
}

// Owner is the owner and group a sender asks an entry to have: by name
// where the source has one (the receiver maps it to its own id, falling
// back to the number when it knows no such name), by number alone with
// Numeric (--numeric-ids) or where the source has no name.
type Owner struct {
	Uid     uint32 `json:"uid"`
	Gid     uint32 `json:"gid"`
	User    string `json:"user,omitempty"`
	Group   string `json:"group,omitempty"`
	Numeric bool   `json:"numeric,omitempty"`
}

// OwnerReport (finish) says what the receiver could not keep of the
// owners the run asked for, since the last finish.
type OwnerReport struct {
	// NotKept counts entries whose owner or group stayed the receiver's.
	NotKept int64 `json:"not_kept,omitempty"`
	// Reason says why, once: "not running as root", "the server does
	// not allow it", or the first error.
	Reason string `json:"reason,omitempty"`
	// Specials counts special files (devices) not created, and
	// SpecialsReason says why.
	Specials       int64  `json:"specials,omitempty"`
	SpecialsReason string `json:"specials_reason,omitempty"`
}

// FileSpec announces a large file the sender will deliver in chunks.
type FileSpec struct {
	FID        uint64 `json:"fid"`
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	Mode       uint32 `json:"mode"`
	MtimeNs    int64  `json:"mtime"`
	ChunkSize  int64  `json:"chunk"`
	ReplaceDir bool   `json:"replace_dir,omitempty"`
	// Delta asks the receiver to seed the partial file from the file
	// already at Path and offer its chunks for adoption, so that only
	// chunks that differ cross the network.
	Delta bool `json:"delta,omitempty"`
	// Sparse: the source has holes; all-zero blocks are left unwritten.
	Sparse bool `json:"sparse,omitempty"`
	// Owner is the owner and group the file is to have (nil: the
	// receiver's).
	Owner *Owner `json:"owner,omitempty"`
	// Shares > 0: the file is split over that many shares of a cluster
	// transfer, which write their chunks into one partial file side by
	// side. Share (1-based) names the share writing now; it keeps the
	// partial file and its own journal at commit ("park"). Share 0 is the
	// final pass, which adopts what every share's journal lists, then
	// verifies the whole file and renames it into place.
	Shares int `json:"shares,omitempty"`
	Share  int `json:"share,omitempty"`
}

// CommitSpec asks the receiver to end the transfer of a file: finish it
// (its chunks all arrived), park it, or abandon it.
type CommitSpec struct {
	FID uint64       `json:"fid"`
	Do  CommitAction `json:"do,omitempty"`
	// Digest, for CommitFinish, is the whole-file BLAKE3 the receiver
	// checks before the rename ("": the sender did not hash; the chunks
	// were checked one by one).
	Digest string `json:"digest,omitempty"`
}

// CommitAction is what a commit does with the partial file.
type CommitAction uint8

const (
	// CommitFinish checks the whole-file digest, sets the attributes,
	// flushes and renames the file into place.
	CommitFinish CommitAction = iota
	// CommitPark, for a share of a split file, flushes the partial file
	// and keeps it with the share's journal for the final pass.
	CommitPark
	// CommitAbandon drops the partial file (the sender gave up on it).
	CommitAbandon
)

// JobSpec asks a peer to run a transfer from its own tree.
type JobSpec struct {
	SrcPath string `json:"src"`
	DstPath string `json:"dst"`
	DstAddr string `json:"dst_addr,omitempty"` // third party: the destination server; empty: back to the requester
	// DstTicket admits the source server to the destination server with
	// the client's rights, confined to DstPath; it is issued by the
	// destination and sealed for the session that carries the job. A
	// third-party job without one is refused. DstTLS says how to reach
	// the destination.
	DstTicket *SealedTicket `json:"dst_ticket,omitempty"`
	DstTLS    *TLSSpec      `json:"dst_tls,omitempty"`
	Options   Options       `json:"options"`
}

// SealedTicket is a ticket as it crosses a connection: its id in the clear
// and its secret sealed under a key of the session carrying it.
type SealedTicket struct {
	ID     string `json:"id"`
	Sealed []byte `json:"sealed"`
}

// TLSSpec describes TLS towards a server for a job: whether to use it, the
// CA to trust (PEM) and the server name to verify.
type TLSSpec struct {
	CAPEM      string `json:"ca_pem,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	Data       bool   `json:"data"`
}

// Error kinds carried in Resp.Kind.
const (
	KindNotFound = "notfound"
	KindEscape   = "escape"
	KindReadOnly = "readonly"
	KindUsage    = "usage"
	KindPeer     = "peer"
	KindSpace    = "nospace"
	// KindRefused: a safety guard refused a sync's deletions (exit 5).
	KindRefused = "refused"
	// KindMaxTransfer: the run stopped at its --max-transfer limit.
	KindMaxTransfer = "max_transfer"
)

// ValidRel checks that p is a clean relative path beneath a root.
func ValidRel(p string) error {
	c, err := fsroot.Clean(p)
	if err != nil {
		return err
	}
	if c != p {
		return fmt.Errorf("path %q is not in canonical form", p)
	}
	return nil
}
