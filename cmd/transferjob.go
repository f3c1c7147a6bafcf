package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/internal/membership"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/internal/watch"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/ui"
)

// transferKind is which of the transfer commands runs.
type transferKind struct {
	sync bool // DST is made to match: extra entries go (sync)
	move bool // each source file goes once its copy is verified (move, moveto)
	to   bool // DST names the copy itself, not the directory it lands in (copyto, moveto)
}

// transferCmd makes c one of the transfer commands (copy, sync, move,
// copyto, moveto): they take SRC and DST, complete them as locations,
// share the flags of addTransferFlags and run runTransfer.
func (a *app) transferCmd(c *cobra.Command, kind transferKind) *cobra.Command {
	c.Args = usageArgs(cobra.ExactArgs(2))
	c.ValidArgsFunction = completeLocations
	c.RunE = func(cmd *cobra.Command, args []string) error { return a.runTransfer(cmd, args, kind) }
	addTransferFlags(c)
	if kind.sync {
		c.Flags().Bool("lock", true, "lock the destination directory for the run (flock on the directory itself) so two runs on it never overlap (--lock=false to skip)")
	} else {
		c.Flags().Bool("lock", false, "lock the destination directory for the run (flock on the directory itself) so two runs never overlap (sync does by default)")
	}
	if kind.move {
		c.Flags().Bool("delete-empty-src-dirs", false, "also remove the source directories the move left empty (never SRC itself)")
	}
	return c
}

// addTransferFlags declares the flags copy and sync share.
func addTransferFlags(c *cobra.Command) {
	f := c.Flags()
	addDialFlags(c, dialFlagSpec{
		protos: protoWords, protoUsage: "data transport: auto (the fastest of a short probe of those both ends offer, cached per peer for 24h), tcp, tcp-zc, uring or rdma",
		streams: transfer.DefaultStreams, streamsUsage: "parallel data streams per peer",
		peer: "a peer",
	})
	addSSHFlags(f)
	intFlag(f, "checkers", transfer.DefaultCheckers, 1, plan.MaxCheckers, "directories each side's walk lists and stats at once")
	intFlag(f, "transfers", transfer.DefaultTransfers, 1, transfer.MaxTransfers, "large files in flight at once (small files travel in batches on every stream)")
	sizeFlag(f, "chunk-size", "4M", "size of the chunks large files are cut into (power of two, 1K to 64M)")
	f.BoolP("checksum", "c", false, "compare files by BLAKE3 of their content instead of size and mtime")
	f.BoolP("dry-run", "n", false, "print what would be created, updated and deleted; change nothing")
	f.BoolP("update", "u", false, "skip files whose destination copy has a newer mtime (rsync -u)")
	f.Bool("ignore-existing", false, "skip every file (and symlink) that already exists at the destination, whatever its content")
	f.Bool("size-only", false, "compare files by size alone: a file of the same size is up to date (its mtime and mode are still set)")
	sizeFlag(f, "max-transfer", "", "stop once files of this many bytes were started (e.g. 10G), with exit code 8; see --cutoff-mode")
	choiceFlag(f, "cutoff-mode", "hard", []string{"hard", "soft", "cautious"}, "with --max-transfer: hard cuts the file that reaches the limit (it resumes next run), soft lets started files finish, cautious starts no file that would pass the limit")
	f.String("files-from", "", "transfer only the paths listed in FILE, relative to SRC, one per line ('#' comments; a listed directory is not recursed into; - reads standard input)")
	f.BoolP("progress", "P", false, "show progress even when the output is not a terminal: the live display on a terminal, else a stats line every 500ms (with --json a stats event), as rclone -P")
	durationFlag(f, "stats", 0, 0, "print a one-line stats summary every INTERVAL (e.g. 1m) for unattended runs; with --json a \"stats\" event (0: none)")
	f.Bool("no-fsync", false, "do not flush files to stable storage before renaming them into place (scratch data)")
	choiceFlag(f, "verify", "full", []string{"full", "none"}, "BLAKE3 verification: full (every chunk and every file) or none (benchmarking only; peers whose data streams are outside TLS verify anyway)")
	sizeFlag(f, "bwlimit", "", "cap the data rate of the whole run (all streams and agents), in bytes per second with an optional K, M or G suffix (e.g. 100M)")
	durationFlag(f, "max-duration", 0, 0, "stop after this long (0: no limit) with exit code 4; finished files stay in place and the next run resumes partial ones")
	f.String("log-file", "", "append logs and every event (JSON lines, with the summary) to this file")
	addFilterFlags(f)
	f.BoolP("hard-links", "H", false, "keep files that are hard links of each other linked at the destination")
	f.BoolP("xattrs", "X", false, "keep extended attributes (user.*; trusted.* and security.* as root), making the destination's match, as rsync -X")
	f.BoolP("acls", "A", false, "keep POSIX ACLs (system.posix_acl_access and _default), as rsync -A")
	f.String("owners", "auto", "keep owners and groups: auto (where the receiver runs as root, like rsync -a), yes (also report once what an unprivileged receiver could not keep) or no")
	f.Bool("numeric-ids", false, "keep owners and groups by number instead of mapping them by name at the receiver")
	f.Bool("specials", true, "recreate fifos, sockets and (as root) devices; false: skip them with one notice")
	f.Bool("delta", true, "for large files that changed, send only the parts that differ from the destination's copy: chunks, then their 16 KiB BLAKE3 leaves (both sides hash the file)")
	f.String("backup-dir", "", "move what the run replaces or deletes at DST into this directory (relative to DST and inside it, e.g. .backup) under its own path, instead of losing it; the run leaves the directory alone")
	f.String("suffix", "", "with --backup-dir: append this to the name of each file kept there (e.g. .old)")
	intFlag(f, "retries", transfer.DefaultRetries, 0, math.MaxInt, "rerun this often after a lost connection, with backoff (1s, 2s, 4s, ...); partial files resume (0: never)")
	durationFlag(f, "etcd-done-ttl", membership.DefaultDoneTTL, 1, "with a cluster kept in etcd: how long the record of a finished job stays there (see docs/etcd.md)")
}

// addFilterFlags declares the filter flags: the rules and the size and
// age limits that copy and sync apply, and move, delete, ls, lsf, size,
// cat and check apply the same way.
func addFilterFlags(f *pflag.FlagSet) {
	ra := new(plan.RuleArgs)
	f.Var(ra.Include(), "include", "include paths matching PATTERN (rsync-like globs, see docs/filters.md; repeatable, order matters)")
	f.Var(ra.Exclude(), "exclude", "exclude paths matching PATTERN (repeatable, order matters)")
	f.Var(ra.FilterFrom(), "filter-from", "read include/exclude rules from FILE ('+ PATTERN', '- PATTERN', '!' clears)")
	f.Var(ra.ExcludeFrom(), "exclude-from", "read exclude patterns from FILE, one per line ('#' and ';' comments), as rsync")
	f.Var(ra.IncludeFrom(), "include-from", "read include patterns from FILE, one per line ('#' and ';' comments), as rsync")
	sizeFlag(f, "min-size", "", "skip files smaller than this (e.g. 10K)")
	sizeFlag(f, "max-size", "", "skip files larger than this (e.g. 1G)")
	f.String("min-age", "", "skip files modified more recently than this (e.g. 2h, 7d)")
	f.String("max-age", "", "skip files modified longer ago than this (e.g. 30d)")
}

// filterOptions builds the filter from --include/--exclude/--filter-from
// (in command-line order) and the size and age limits; nil when none.
func (a *app) filterOptions(cmd *cobra.Command) (*plan.FilterOptions, error) {
	o := plan.FilterOptions{MinSize: -1, MaxSize: -1}
	if fl := cmd.Flags().Lookup("include"); fl != nil {
		if rf, ok := fl.Value.(plan.RuleFlag); ok {
			rules, err := rf.Args().Rules(nil)
			if err != nil {
				return nil, exitcode.Usagef("%v", err)
			}
			o.Rules = rules
		}
	}
	for _, s := range []struct {
		flag string
		dst  *int64
	}{{"min-size", &o.MinSize}, {"max-size", &o.MaxSize}} {
		if v := a.v.GetString(s.flag); v != "" {
			n, err := parseSize(v)
			if err != nil {
				return nil, exitcode.Usagef("--%s: %v", s.flag, err)
			}
			*s.dst = n
		}
	}
	for _, s := range []struct {
		flag string
		dst  *time.Duration
	}{{"min-age", &o.MinAge}, {"max-age", &o.MaxAge}} {
		if v := a.v.GetString(s.flag); v != "" {
			d, err := plan.ParseAge(v)
			if err != nil {
				return nil, exitcode.Usagef("--%s: %v", s.flag, err)
			}
			*s.dst = d
		}
	}
	if name := a.v.GetString("files-from"); name != "" {
		list, err := readFilesFrom(name, os.Stdin)
		if err != nil {
			return nil, err
		}
		o.FilesFrom = list
	}
	if len(o.Rules) == 0 && o.FilesFrom == nil && o.MinSize < 0 && o.MaxSize < 0 && o.MinAge == 0 && o.MaxAge == 0 {
		return nil, nil
	}
	if _, err := plan.NewFilter(o); err != nil {
		return nil, exitcode.Usagef("%v", err)
	}
	return &o, nil
}

// readFilesFrom reads the --files-from list FILE ("-": in).
func readFilesFrom(name string, in io.Reader) ([]string, error) {
	if name == "-" {
		list, err := plan.ParseFilesFrom(in, "(standard input)")
		if err != nil {
			return nil, exitcode.Usagef("%v", err)
		}
		return list, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, exitcode.Usagef("--files-from %s: %s", name, fileProblem(err))
	}
	defer f.Close()
	list, err := plan.ParseFilesFrom(f, name)
	if err != nil {
		return nil, exitcode.Usagef("%v", err)
	}
	return list, nil
}

// parseSize parses 4M, 64k, 1GiB, 4096.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		case 'T':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix", s)
	}
	return v * mult, nil
}

// remotes reads the `remotes` section of the config file, keyed by name in
// lower case.
func (a *app) remotes() (map[string]location.Remote, error) {
	out := map[string]location.Remote{}
	if a.cfg == nil {
		return out, nil
	}
	rs, err := a.cfg.Remotes()
	if err != nil {
		return nil, exitcode.Usagef("%v", err)
	}
	for _, r := range rs {
		out[strings.ToLower(r.Name)] = r
	}
	return out, nil
}

func (a *app) endpoint(s string, remotes map[string]location.Remote) (transfer.Endpoint, error) {
	l, err := location.Parse(s, remotes)
	if err != nil {
		return transfer.Endpoint{}, exitcode.Usagef("%v", err)
	}
	if l.IsLocal() {
		return transfer.Endpoint{Path: l.Path}, nil
	}
	if l.Remote.SSH != nil {
		return a.sshEndpoint(l)
	}
	var r *location.Remote
	if l.Remote.Name != "" {
		r = l.Remote
	}
	pa, err := a.peerAuth(r)
	if err != nil {
		return transfer.Endpoint{}, err
	}
	var members transfer.Membership
	if l.Remote.Etcd != nil {
		if l.Remote.Agents, members, err = etcdAgents(context.Background(), l.Remote.Etcd); err != nil {
			return transfer.Endpoint{}, err
		}
	}
	ep := transfer.Endpoint{Addr: l.Addr(), Path: l.Path, Auth: pa, Members: members}
	if l.Remote.Etcd != nil {
		ep.Job = &etcdJob{e: l.Remote.Etcd, path: l.Path}
	}
	if len(l.Remote.Agents) > 1 || members != nil {
		ep.Agents = l.Remote.Agents
	}
	return ep, nil
}

// printer builds the output for the invoked command's flags.
func (a *app) printer(dryRun bool) *ui.Printer { return ui.New(a.printerOptions(dryRun)) }

// printerOptions are the output options of the invoked command's flags.
func (a *app) printerOptions(dryRun bool) ui.Options {
	mode := ui.ModeAuto
	switch {
	case a.v.GetBool("json"):
		mode = ui.ModeJSON
	case a.v.GetBool("quiet"):
		mode = ui.ModeQuiet
	}
	return ui.Options{Mode: mode, Stdout: a.stdout, Stderr: a.stderr, DryRun: dryRun, Verbose: a.verbosity() > 0,
		Stats: a.v.GetDuration("stats"), Progress: a.v.GetBool("progress")}
}

// runTransfer is copy, sync, move, copyto and moveto.
func (a *app) runTransfer(cmd *cobra.Command, args []string, kind transferKind) error {
	sync := kind.sync
	remotes, err := a.remotes()
	if err != nil {
		return err
	}
	src, err := a.endpoint(args[0], remotes)
	if err != nil {
		return err
	}
	dst, err := a.endpoint(args[1], remotes)
	if err != nil {
		return err
	}
	// Each endpoint carries its own auth; the rest of the dial flags
	// travel in Options.
	do, err := a.dialOptions(transfer.PeerAuth{})
	if err != nil {
		return err
	}
	opt := transfer.Options{
		Checksum:       a.v.GetBool("checksum"),
		Update:         a.v.GetBool("update"),
		IgnoreExisting: a.v.GetBool("ignore-existing"),
		SizeOnly:       a.v.GetBool("size-only"),
		CutoffMode:     transfer.CutoffMode(a.v.GetString("cutoff-mode")),
		DryRun:         a.v.GetBool("dry-run"),
		NoFsync:        a.v.GetBool("no-fsync"),
		Streams:        do.Streams,
		Checkers:       a.v.GetInt("checkers"),
		Transfers:      a.v.GetInt("transfers"),
		ChunkSize:      a.v.GetSize("chunk-size"),
		Proto:          do.Proto,
		Verify:         a.v.GetString("verify"),
		ConnectTO:      do.ConnectTimeout,
		IdleTO:         do.IdleTimeout,
		Retries:        a.v.GetInt("retries"),
		Delta:          a.v.GetBool("delta"),
		UringEntry:     do.UringEntries,
		Lock:           a.v.GetBool("lock"),
		HardLinks:      a.v.GetBool("hard-links"),
		Xattrs:         a.v.GetBool("xattrs"),
		ACLs:           a.v.GetBool("acls"),
		Owners:         transfer.OwnersMode(a.v.GetString("owners")),
		NumericIDs:     a.v.GetBool("numeric-ids"),
		NoSpecials:     !a.v.GetBool("specials"),
	}
	flt, err := a.filterOptions(cmd)
	if err != nil {
		return err
	}
	opt.Filter = flt
	if d := a.v.GetString("backup-dir"); d != "" {
		opt.BackupDir = path.Clean(d) // "./old/" is "old"; Validate refuses what leads out of DST
	}
	opt.Suffix = a.v.GetString("suffix")
	if opt.BwLimit, err = parseBwLimit(a.v.GetString("bwlimit")); err != nil {
		return err
	}
	if opt.Retries == 0 { // retries below 0 are refused by the flag
		opt.Retries = -1 // --retries 0: none
	}
	if s := a.v.GetString("max-transfer"); s != "" {
		if opt.MaxTransfer = a.v.GetSize("max-transfer"); opt.MaxTransfer < 1 {
			return exitcode.Usagef("--max-transfer %q: want a size of at least 1, e.g. 10G", s)
		}
	}
	if sync {
		opt.Delete = a.v.GetBool("delete")
		opt.ReplaceDirs = true
		if n := int64(a.v.GetInt("max-delete")); n >= 0 {
			opt.MaxDelete = &n
		}
		opt.AllowEmptySource = a.v.GetBool("allow-empty-source")
		if a.v.GetBool("delete-excluded") {
			if !opt.Delete {
				return exitcode.Usagef("--delete-excluded deletes at DST and --delete=false says not to: drop one of them")
			}
			opt.Delete, opt.DeleteExcluded = true, true // as rsync: --delete-excluded implies --delete
		}
	}
	if kind.to {
		dst, opt.DstName = splitName(dst)
	}
	var move *transfer.RemoveOptions
	if kind.move {
		move = &transfer.RemoveOptions{Filter: flt, RmDirs: a.v.GetBool("delete-empty-src-dirs"), DryRun: opt.DryRun,
			Checksum: opt.Checksum, DstName: opt.DstName, Checkers: opt.Checkers}
	}
	if opt.Checkers < 1 {
		return exitcode.Usagef("--checkers: want 1 to %d, got %d", plan.MaxCheckers, opt.Checkers)
	}
	if opt.Transfers < 1 {
		return exitcode.Usagef("--transfers: want 1 to %d, got %d", transfer.MaxTransfers, opt.Transfers)
	}
	if err := opt.Validate(); err != nil {
		return err
	}
	for _, ep := range []transfer.Endpoint{src, dst} {
		if j, ok := ep.Job.(*etcdJob); ok {
			j.name(args, kind, opt, a.v.GetDuration("etcd-done-ttl"))
			defer j.close()
		}
	}
	a.log.Debug("transfer options", "command", cmd.Name(), "src", args[0], "dst", args[1], "streams", opt.Streams,
		"transfers", opt.Transfers, "chunk_size", opt.ChunkSize, "proto", opt.Proto, "checksum", opt.Checksum,
		"update", opt.Update, "ignore_existing", opt.IgnoreExisting, "size_only", opt.SizeOnly, "delete", opt.Delete,
		"delete_excluded", opt.DeleteExcluded, "max_transfer", opt.MaxTransfer, "cutoff_mode", opt.CutoffMode, "dry_run", opt.DryRun)
	var fl *fileLog
	if lf := a.v.GetString("log-file"); lf != "" {
		if fl, err = newFileLog(lf); err != nil {
			return err
		}
		defer fl.Close()
		a.log = fl.logger(a.v.GetString("log-format"), a.verbosity() > 0)
	}
	if sync && a.v.GetBool("watch") {
		if src.IsRemote() {
			return exitcode.Usagef("--watch: SRC must be a local directory (it is watched with inotify)")
		}
		switch st, err := os.Stat(src.Path); {
		case errors.Is(err, fs.ErrNotExist):
			return exitcode.Usagef("source %s does not exist", src.Path)
		case err != nil:
			return exitcode.Usagef("source %s: %s", src.Path, fileProblem(err))
		case !st.IsDir():
			return exitcode.Usagef("--watch: SRC %s must be a directory (it is watched with inotify)", src.Path)
		}
		if opt.DryRun {
			return exitcode.Usagef("--watch and --dry-run do not go together")
		}
		return watch.Run(cmd.Context(), src.Path, watch.Options{
			Debounce: a.v.GetDuration("watch-debounce"),
			Rescan:   a.v.GetDuration("watch-rescan"),
			Log:      a.log,
		}, func(ctx context.Context) error { return a.transferPass(ctx, cmd, src, dst, opt, fl, nil) })
	}
	return a.transferPass(cmd.Context(), cmd, src, dst, opt, fl, move)
}

// splitName splits the last name off a destination's path (copyto,
// moveto): the directory the copy lands in, and its name there. A path
// without a name (a peer's root) keeps the copy's own name.
func splitName(ep transfer.Endpoint) (transfer.Endpoint, string) {
	if !ep.IsRemote() {
		p := filepath.Clean(ep.Path)
		if p == "/" || p == "." || p == ".." || strings.HasSuffix(p, "/..") {
			return ep, ""
		}
		ep.Path = filepath.Dir(p)
		return ep, filepath.Base(p)
	}
	p := strings.Trim(path.Clean("/"+ep.Path), "/")
	if p == "" {
		return ep, ""
	}
	ep.Path = path.Dir(p)
	if ep.Path == "." {
		ep.Path = ""
	}
	return ep, path.Base(p)
}

// transferPass runs one copy or sync with its own output; move, for a
// move, removes what was copied afterwards.
func (a *app) transferPass(ctx context.Context, cmd *cobra.Command, src, dst transfer.Endpoint, opt transfer.Options, fl *fileLog, move *transfer.RemoveOptions) error {
	printer := a.printer(opt.DryRun)
	var (
		sink   progress.Sink = printer
		finish               = printer.Finish
	)
	if fl != nil {
		sink = progress.SinkFunc(func(e progress.Event) { printer.Emit(e); fl.Emit(e) })
		finish = func(s progress.Summary) { fl.Summary(s); printer.Finish(s) }
	}
	parent := ctx
	maxDur := a.v.GetDuration("max-duration")
	if maxDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxDur)
		defer cancel()
	}
	dial := transfer.DialOptions{Log: a.log, ClientVersion: versionString()}
	sum, err := transfer.Run(ctx, src, dst, opt, dial, sink)
	var partial *transfer.PartialError
	if move != nil && (err == nil || errors.As(err, &partial)) {
		// What was copied and verified now leaves the source; what
		// failed stays there.
		dial.ConnectTimeout, dial.IdleTimeout, dial.Streams = opt.ConnectTO, opt.IdleTO, 1
		tally := progress.NewTally()
		merr := transfer.RemoveMoved(ctx, src, dst, *move, dial, sink, tally)
		rs := tally.Summary()
		sum.SourceRemoved, sum.DirsRemoved = rs.SourceRemoved, rs.DirsRemoved
		sum.Errors += rs.Errors
		switch {
		case merr != nil:
			err = merr
		case sum.Errors > 0:
			err = &transfer.PartialError{Failed: sum.Errors}
		}
	}
	if err != nil {
		// A run that was stopped is not a failure of its files: say once
		// why it stopped and what resumes it.
		if se, ok := interruptedBy(parent); ok {
			return a.stopped(sink, finish, sum, progress.StoppedInterrupted, exitcode.Signal(int(se.sig)),
				fmt.Sprintf("interrupted by %s before the run was done", signalName(se.sig)))
		}
		if maxDur > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
			code := exitcode.Stopped
			if sum.Errors > 0 {
				code = exitcode.Partial
			}
			return a.stopped(sink, finish, sum, progress.StoppedMaxDuration, code,
				fmt.Sprintf("stopped after --max-duration %s before the run was done", maxDur))
		}
	}
	if exitcode.Code(err) == exitcode.MaxTransfer {
		code := exitcode.MaxTransfer
		if sum.Errors > 0 {
			code = exitcode.Partial
		}
		return a.stopped(sink, finish, sum, progress.StoppedMaxTransfer, code, userMessage(err))
	}
	if err != nil && !errors.As(err, &partial) {
		// The run stopped: say why once, after what it did.
		sink.Emit(progress.Event{Event: progress.KindError, Error: userMessage(err)})
		sum.Errors++
		sum.ExitCode = exitcode.Code(err)
		finish(sum)
		return fmt.Errorf("%w (%w)", silent(sum.ExitCode), err)
	}
	if err != nil {
		sum.ExitCode = exitcode.Partial
	}
	finish(sum)
	if err != nil {
		return fmt.Errorf("%w (%w)", silent(exitcode.Partial), err)
	}
	return nil
}

// stopped ends a run that stopped before its work was done (why is
// progress.StoppedInterrupted, StoppedMaxDuration or StoppedMaxTransfer): one line saying so
// and what resumes it, the summary marked, and exit code code. Files it
// did not get to are not errors.
func (a *app) stopped(sink progress.Sink, finish func(progress.Summary), sum progress.Summary, why string, code int, what string) error {
	sink.Emit(progress.Event{Event: progress.KindStopped, Msg: what +
		": finished files are in place and partial ones resume; rerun the same command to continue"})
	sum.Stopped, sum.ExitCode = why, code
	finish(sum)
	return silent(code)
}
