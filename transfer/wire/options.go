package wire

import (
	"path"
	"strings"
	"time"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
)

// Options tune a transfer. They travel to a peer that runs a job, so they
// are plain JSON.
type Options struct {
	Delete bool `json:"delete,omitempty"` // remove extra destination entries (sync)
	// MaxDelete refuses every deletion of a sync that would delete more
	// than *MaxDelete entries (--max-delete); nil: no limit.
	MaxDelete *int64 `json:"max_delete,omitempty"`
	// AllowEmptySource lets a sync from an empty source delete what the
	// destination holds (--allow-empty-source); without it that is
	// refused.
	AllowEmptySource bool `json:"allow_empty_source,omitempty"`
	// BackupDir, a path relative to the destination directory and inside
	// it, receives what a run replaces or deletes (--backup-dir), moved
	// there under its own path with Suffix appended to each name
	// (--suffix) instead of being lost; the run never lists, replaces or
	// deletes what is in it. "": no backups.
	BackupDir   string `json:"backup_dir,omitempty"`
	Suffix      string `json:"suffix,omitempty"`
	ReplaceDirs bool   `json:"replace_dirs,omitempty"` // a directory in the way of a file may go (sync)
	Checksum    bool   `json:"checksum,omitempty"`     // compare content by BLAKE3, not size+mtime
	// Update (-u) skips files whose destination copy is newer;
	// IgnoreExisting skips whatever exists at the destination; SizeOnly
	// compares files by size alone (plan.DiffOptions).
	Update         bool `json:"update,omitempty"`
	IgnoreExisting bool `json:"ignore_existing,omitempty"`
	SizeOnly       bool `json:"size_only,omitempty"`
	// DeleteExcluded (sync, with Delete) also deletes destination
	// entries that the filter rules exclude.
	DeleteExcluded bool `json:"delete_excluded,omitempty"`
	// MaxTransfer stops the run once this many bytes of files were
	// started (0: no limit), as CutoffMode says: CutoffHard, CutoffSoft
	// or CutoffCautious ("" is hard).
	MaxTransfer int64      `json:"max_transfer,omitempty"`
	CutoffMode  CutoffMode `json:"cutoff_mode,omitempty"`
	DryRun      bool       `json:"dry_run,omitempty"`
	NoFsync     bool       `json:"no_fsync,omitempty"`
	Streams     int        `json:"streams,omitempty"`
	ChunkSize   int64      `json:"chunk_size,omitempty"`
	Proto       string     `json:"proto,omitempty"`   // auto, tcp, tcp-zc, uring, rdma
	Verify      string     `json:"verify,omitempty"`  // full (default) or none
	Retries     int        `json:"retries,omitempty"` // reruns after a lost connection (-1: none)
	// Delta sends only the chunks of a changed large file that differ
	// from the file already at the destination.
	Delta bool `json:"delta,omitempty"`
	// Lock holds a lock in the destination directory for the run, so two
	// runs on one destination never overlap.
	Lock bool `json:"lock,omitempty"`
	// HardLinks keeps files that are hard links of each other in the
	// source tree linked at the destination.
	HardLinks bool `json:"hard_links,omitempty"`
	// Xattrs (-X) and ACLs (-A) keep extended attributes and POSIX ACLs:
	// the destination's are made to match the source's.
	Xattrs bool `json:"xattrs,omitempty"`
	ACLs   bool `json:"acls,omitempty"`
	// Owners says whether owners and groups are kept: OwnersAuto (""),
	// OwnersYes or OwnersNo. NumericIDs keeps them by number instead of by
	// name.
	Owners     OwnersMode `json:"owners,omitempty"`
	NumericIDs bool       `json:"numeric_ids,omitempty"`
	// NoSpecials skips fifos, sockets and devices instead of recreating
	// them.
	NoSpecials bool `json:"no_specials,omitempty"`
	// Filter selects what is transferred (--include/--exclude, size and
	// age limits); excluded destination entries are neither compared nor
	// deleted. nil: everything.
	Filter *plan.FilterOptions `json:"filter,omitempty"`
	// BwLimit caps the payload rate in bytes per second (0: none).
	BwLimit     int64         `json:"bwlimit,omitempty"`
	ConnectTO   time.Duration `json:"connect_timeout,omitempty"`
	IdleTO      time.Duration `json:"idle_timeout,omitempty"`
	UringEntry  int           `json:"uring_entries,omitempty"`
	ProtoReason string        `json:"-"`
	// Shard makes this run one of several that share a cluster transfer:
	// it moves only its share of the regular files and leaves
	// directories, links, attributes and deletions to the final pass.
	Shard *Shard `json:"shard,omitempty"`
	// SplitShares tells the final pass of a cluster transfer over that
	// many shares which large files the shares split between them, so
	// that it adopts what they wrote.
	SplitShares int `json:"split_shares,omitempty"`
	// Unit restricts the run to some directories of the source tree: a
	// unit of a cluster transfer's distributed walk. nil: the whole tree.
	Unit *Unit `json:"unit,omitempty"`

	// Checkers is how many directories each side's walk reads (and
	// lstats) at once (--checkers); Transfers how many large files are in
	// flight at once (--transfers). 0: the defaults.
	Checkers  int `json:"checkers,omitempty"`
	Transfers int `json:"transfers,omitempty"`

	// DstName, for a source that is one file, is the name it gets in the
	// destination directory instead of its own (copyto, moveto). Empty:
	// its own name.
	DstName string `json:"dst_name,omitempty"`
}

// OwnersMode says whether a run keeps owners and groups.
type OwnersMode string

// Owner modes.
const (
	// OwnersAuto keeps them where the receiver runs as root (like rsync
	// -a); an unprivileged receiver keeps the groups it is a member of,
	// silently.
	OwnersAuto OwnersMode = "auto"
	// OwnersYes asks for them wherever: what a receiver cannot keep is
	// reported once per run.
	OwnersYes OwnersMode = "yes"
	// OwnersNo leaves every entry to the receiver's owner and group.
	OwnersNo OwnersMode = "no"
)

// Shard names one share of a transfer spread over several agent pairs.
// Every share walks the same source tree in the same order and assigns
// each regular file to the share with the fewest bytes so far, so all
// shares agree on who moves what without talking to each other.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Unit is the part of the tree one run of a distributed walk covers:
// directories relative to the transfer's top, each read alone (Shallow:
// its direct entries, their attributes and the deletions among them) or
// with everything beneath it (its subtree; the directory itself is its
// parent's). Paths are as a walk yields them: no leading or trailing
// slash, no "." or ".." element; "" (the top) only when Shallow.
type Unit struct {
	Dirs    []UnitDir `json:"dirs"`
	Shallow bool      `json:"shallow,omitempty"`
}

// UnitDir is one directory of a Unit: a name field of its own, so that a
// name that is not UTF-8 crosses exactly (with its path_b64 sibling).
type UnitDir struct {
	Path string `json:"path"`
}

// UnitDirs makes the directories of a Unit from their paths.
func UnitDirs(paths []string) []UnitDir {
	out := make([]UnitDir, len(paths))
	for i, p := range paths {
		out[i].Path = p
	}
	return out
}

// MaxUnitDirs bounds the directories of one Unit.
const MaxUnitDirs = 4096

// MaxShards bounds Shard.Count (agent pairs of one cluster transfer).
const MaxShards = 1024

// CutoffMode is how MaxTransfer stops a run, as rclone's --cutoff-mode:
// hard cuts the file that reaches the limit there (its partial file
// resumes next run), soft lets the files already started finish,
// cautious starts no file that would take the total past the limit.
type CutoffMode string

// The cutoff modes.
const (
	CutoffHard     CutoffMode = "hard"
	CutoffSoft     CutoffMode = "soft"
	CutoffCautious CutoffMode = "cautious"
)

// Defaults.
const (
	DefaultStreams        = 4
	DefaultChunkSize      = hashtree.DefaultChunkSize
	DefaultConnectTimeout = 10 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultRetries        = 3
	DefaultCheckers       = plan.DefaultCheckers
	DefaultTransfers      = 8
	MaxTransfers          = 256
)

func (o Options) WithDefaults() Options {
	if o.Streams <= 0 {
		o.Streams = DefaultStreams
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Verify == "" {
		o.Verify = "full"
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.ConnectTO <= 0 {
		o.ConnectTO = DefaultConnectTimeout
	}
	if o.IdleTO <= 0 {
		o.IdleTO = DefaultIdleTimeout
	}
	if o.Checkers <= 0 {
		o.Checkers = DefaultCheckers
	}
	if o.Transfers <= 0 {
		o.Transfers = DefaultTransfers
	}
	return o
}

// Validate checks options a user typed.
func (o Options) Validate() error {
	if o.ChunkSize != 0 {
		if err := hashtree.ValidChunkSize(o.ChunkSize); err != nil {
			return exitcode.Usagef("--chunk-size: %v", err)
		}
		if o.ChunkSize > MaxChunkSize {
			return exitcode.Usagef("--chunk-size: at most %d MiB", MaxChunkSize>>20)
		}
	}
	if o.SplitShares < 0 || o.SplitShares > MaxShards {
		return exitcode.Usagef("split over %d shares: out of range", o.SplitShares)
	}
	if err := o.Unit.validate(); err != nil {
		return err
	}
	if o.Shard != nil && (o.Shard.Count < 1 || o.Shard.Count > MaxShards || o.Shard.Index < 0 || o.Shard.Index >= o.Shard.Count) {
		return exitcode.Usagef("shard %d of %d: out of range", o.Shard.Index, o.Shard.Count)
	}
	if o.Streams < 0 || o.Streams > 64 {
		return exitcode.Usagef("--streams: want 1 to 64, got %d", o.Streams)
	}
	if o.Checkers < 0 || o.Checkers > plan.MaxCheckers {
		return exitcode.Usagef("--checkers: want 1 to %d, got %d", plan.MaxCheckers, o.Checkers)
	}
	if o.Transfers < 0 || o.Transfers > MaxTransfers {
		return exitcode.Usagef("--transfers: want 1 to %d, got %d", MaxTransfers, o.Transfers)
	}
	if err := o.validBackup(); err != nil {
		return err
	}
	if o.MaxDelete != nil && *o.MaxDelete < 0 {
		return exitcode.Usagef("--max-delete: want 0 or more, got %d", *o.MaxDelete)
	}
	if o.DstName != "" && (strings.Contains(o.DstName, "/") || o.DstName == "." || o.DstName == ".." || strings.ContainsRune(o.DstName, 0)) {
		return exitcode.Usagef("destination name %q: want a single file name", o.DstName)
	}
	switch o.Owners {
	case "", OwnersAuto, OwnersYes, OwnersNo:
	default:
		return exitcode.Usagef("--owners: want auto, yes or no, got %q", o.Owners)
	}
	switch o.CutoffMode {
	case "", CutoffHard, CutoffSoft, CutoffCautious:
	default:
		return exitcode.Usagef("--cutoff-mode: want hard, soft or cautious, got %q", o.CutoffMode)
	}
	if o.MaxTransfer < 0 {
		return exitcode.Usagef("--max-transfer: want a size of at least 1, got %d", o.MaxTransfer)
	}
	switch o.Verify {
	case "", "full", "none":
	default:
		return exitcode.Usagef("--verify: want full or none, got %q", o.Verify)
	}
	return nil
}

// validBackup checks --backup-dir and --suffix: a directory inside the
// destination, given relative to it, and a suffix that stays a name.
func (o Options) validBackup() error {
	if o.Suffix != "" && o.BackupDir == "" {
		return exitcode.Usagef("--suffix: needs --backup-dir (the backups are kept there)")
	}
	if strings.ContainsAny(o.Suffix, "/\x00") {
		return exitcode.Usagef("--suffix %q: must not contain / or NUL", o.Suffix)
	}
	if o.BackupDir == "" {
		return nil
	}
	if ValidRel(o.BackupDir) != nil || o.BackupDir == "." {
		return exitcode.Usagef("--backup-dir %q: want a directory inside the destination, relative to it (such as .backup or old/2026-12-04)", o.BackupDir)
	}
	return nil
}

// validate checks a unit's directories (a nil unit is none).
func (u *Unit) validate() error {
	if u == nil {
		return nil
	}
	if len(u.Dirs) == 0 || len(u.Dirs) > MaxUnitDirs {
		return exitcode.Usagef("unit of %d directories: want 1 to %d", len(u.Dirs), MaxUnitDirs)
	}
	for _, ud := range u.Dirs {
		d := ud.Path
		if d == "" && u.Shallow {
			continue
		}
		if d == "" || d == "." || path.Clean(d) != d || path.IsAbs(d) || d == ".." || strings.HasPrefix(d, "../") {
			return exitcode.Usagef("unit directory %q: not a path beneath the top", d)
		}
	}
	return nil
}
