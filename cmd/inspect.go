package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer"
)

// The inspect commands (ls, lsf, size, cat and check) look at locations
// without changing them, as rclone's commands of the same names do. Each
// location is opened as a transfer.Tree: a local path here, a peer's tree
// over one session, listed, hashed and read on the peer.

// inspectCmd gives c the flags every inspect command shares: how to reach
// peers (auth, timeouts, ssh) and the filters.
func inspectCmd(c *cobra.Command, args cobra.PositionalArgs) *cobra.Command {
	c.Args = usageArgs(args)
	c.ValidArgsFunction = completeLocations
	f := c.Flags()
	addPeerAuthFlags(c)
	durationFlag(f, "connect-timeout", transfer.DefaultConnectTimeout, 1, "give up connecting to a peer after this long (above 0)")
	durationFlag(f, "timeout", transfer.DefaultIdleTimeout, 1, "give up on a peer that stays silent this long (above 0)")
	addSSHFlags(f)
	intFlag(f, "checkers", transfer.DefaultCheckers, 1, plan.MaxCheckers, "directories each walk lists and stats at once")
	addFilterFlags(f)
	return c
}

// openTree opens the location arg for an inspect command.
func (a *app) openTree(ctx context.Context, arg string) (*transfer.Tree, error) {
	remotes, err := a.remotes()
	if err != nil {
		return nil, err
	}
	ep, err := a.endpoint(arg, remotes)
	if err != nil {
		return nil, err
	}
	return transfer.OpenTree(ctx, ep, transfer.DialOptions{
		Streams:        1,
		ConnectTimeout: a.v.GetDuration("connect-timeout"),
		IdleTimeout:    a.v.GetDuration("timeout"),
		Log:            a.log,
		ClientVersion:  versionString(),
	})
}

// inspectFilter is the filter of the invoked command's flags (nil: none).
func (a *app) inspectFilter(cmd *cobra.Command) (*plan.Filter, error) {
	o, err := a.filterOptions(cmd)
	if err != nil || o == nil {
		return nil, err
	}
	return plan.NewFilter(*o)
}

// walkSpec says what walkTree yields.
type walkSpec struct {
	recursive bool // else only the location's own entries
	checksum  bool // regular files carry their BLAKE3
	filter    *plan.Filter
	checkers  int
}

// walkTree calls fn for each entry of t that spec admits, in plan.Compare
// order. A directory that cannot be listed is reported on stderr, once,
// and counted in unreadable; the walk goes on beside it.
func (a *app) walkTree(ctx context.Context, t *transfer.Tree, spec walkSpec, fn func(plan.Entry) error) (unreadable int, err error) {
	l := spec.filter.Lister(t.List(ctx, spec.checksum, spec.checkers))
	for {
		e, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			return unreadable, nil
		}
		if err != nil {
			return unreadable, a.treeErr(ctx, t, err)
		}
		if !spec.recursive && strings.Contains(e.Path, "/") {
			continue
		}
		if sk, ok := l.(plan.DirSkipper); ok && !spec.recursive && e.Type == plan.TypeDir {
			sk.SkipDir() // a local walk need not read what lsf leaves out
		}
		if e.Err != "" {
			fmt.Fprintf(a.stderr, "xfer: %s: cannot read: %s\n", shownPath(t, e.Path), progress.EscapeInvalid(e.Err))
			unreadable++
		}
		if e.Type == plan.TypeOther || !spec.filter.Match(e) {
			continue
		}
		if err := fn(e); err != nil {
			return unreadable, err
		}
	}
}

// treeErr is err of a walk of t, worded for the user.
func (a *app) treeErr(ctx context.Context, t *transfer.Tree, err error) error {
	if stopped(ctx) {
		return interrupted(ctx)
	}
	if exitcode.Code(err) != exitcode.Partial && exitcode.Code(err) != exitcode.Peer && exitcode.Code(err) != exitcode.Usage {
		return exitcode.WithCode(exitcode.Partial, fmt.Errorf("%s: %w", t, err))
	}
	return fmt.Errorf("%s: %w", t, err)
}

// shownPath is the entry rel of t as messages name it.
func shownPath(t *transfer.Tree, rel string) string {
	if !t.IsDir() {
		return progress.EscapeInvalid(t.String())
	}
	return progress.EscapeInvalid(strings.TrimSuffix(t.String(), "/") + "/" + rel)
}

// eachEntry opens the location arg and walks it (walkTree) with the
// invoked command's filters and --checkers.
func (a *app) eachEntry(cmd *cobra.Command, arg string, spec walkSpec, fn func(plan.Entry) error) (unreadable int, err error) {
	if spec.filter, err = a.inspectFilter(cmd); err != nil {
		return 0, err
	}
	spec.checkers = a.v.GetInt("checkers")
	t, err := a.openTree(cmd.Context(), arg)
	if err != nil {
		return 0, err
	}
	defer t.Close()
	return a.walkTree(cmd.Context(), t, spec, fn)
}

// noJSON refuses --json for a command whose output is already a format
// of its own (ls, lsf, cat), rather than ignoring it.
func (a *app) noJSON(cmd *cobra.Command) error {
	if a.v.GetBool("json") {
		return exitcode.Usagef("%s has no --json output (lsf --format picks fields; size and check have --json)", cmd.Name())
	}
	return nil
}

func newLsCmd(a *app) *cobra.Command {
	return inspectCmd(&cobra.Command{
		Use:   "ls LOCATION",
		Short: "List the files beneath LOCATION with their sizes, as rclone ls",
		Long: `Ls lists every regular file beneath LOCATION (a local path, a served peer's
xfer://HOST:PORT/PATH, NAME:PATH of a remote, or ssh://), recursively, one
line each: the size right-aligned in nine columns, a space and the path
relative to LOCATION, exactly as rclone ls prints them. Names are printed
as they are, byte for byte. A peer lists its own tree, within its root.

A directory that cannot be read is reported on stderr and the rest is
listed; the exit code is then 1. A LOCATION that does not exist is an
error (exit 2).`,
		Example: `  xfer ls ./data
  xfer ls xfer://node1:7878/proj --include '*.h5'
  xfer ls nodeA:/proj`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.noJSON(cmd); err != nil {
				return err
			}
			w := bufio.NewWriter(a.stdout)
			defer w.Flush()
			n, err := a.eachEntry(cmd, args[0], walkSpec{recursive: true}, func(e plan.Entry) error {
				if e.Type == plan.TypeFile {
					fmt.Fprintf(w, "%9d %s\n", e.Size, e.Path)
				}
				return nil
			})
			return exitOf(err, n > 0)
		},
	}, cobra.ExactArgs(1))
}

func newLsfCmd(a *app) *cobra.Command {
	c := inspectCmd(&cobra.Command{
		Use:   "lsf LOCATION",
		Short: "List LOCATION's entries in a format of your choosing, as rclone lsf",
		Long: `Lsf lists the entries of LOCATION, one per line, as rclone lsf does:
directories end in "/", and -R (--recursive) lists everything beneath.
--format picks the fields and their order, joined by --separator (";"):

  p  path, relative to LOCATION
  s  size in bytes (-1 for a directory)
  t  modification time, "2006-01-02 15:04:05" in the local time zone
  h  BLAKE3 of the content, 64 hex digits (empty for a directory or a
     symlink); a peer hashes its own files

Symlinks are listed as themselves (their size is that of the target's
name); rclone leaves them out unless told -l or -L. Names are printed as
they are, byte for byte.`,
		Example: `  xfer lsf ./data
  xfer lsf -R --format psth --separator '|' xfer://node1:7878/proj
  xfer lsf -R --files-only nodeA:/proj`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runLsf(cmd, args[0]) },
	}, cobra.ExactArgs(1))
	f := c.Flags()
	f.BoolP("recursive", "R", false, "list everything beneath LOCATION, not only its own entries")
	f.StringP("format", "F", "p", "fields to print, in order: p (path), s (size), t (modification time), h (BLAKE3)")
	f.StringP("separator", "s", ";", "what separates the fields")
	f.Bool("files-only", false, "list files (and symlinks) only")
	f.Bool("dirs-only", false, "list directories only")
	return c
}

func (a *app) runLsf(cmd *cobra.Command, arg string) error {
	if err := a.noJSON(cmd); err != nil {
		return err
	}
	format, sep := a.v.GetString("format"), a.v.GetString("separator")
	for _, r := range format {
		if !strings.ContainsRune("psth", r) {
			return exitcode.Usagef("--format %q: unknown field %q (want p, s, t or h)", format, r)
		}
	}
	if format == "" {
		return exitcode.Usagef("--format: want at least one of p, s, t and h")
	}
	filesOnly, dirsOnly := a.v.GetBool("files-only"), a.v.GetBool("dirs-only")
	if filesOnly && dirsOnly {
		return exitcode.Usagef("--files-only and --dirs-only do not go together")
	}
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	spec := walkSpec{recursive: a.v.GetBool("recursive"), checksum: strings.ContainsRune(format, 'h')}
	n, err := a.eachEntry(cmd, arg, spec, func(e plan.Entry) error {
		dir := e.Type == plan.TypeDir
		if (filesOnly && dir) || (dirsOnly && !dir) {
			return nil
		}
		fields := make([]string, 0, len(format))
		for _, r := range format {
			switch r {
			case 'p':
				p := e.Path
				if dir {
					p += "/"
				}
				fields = append(fields, p)
			case 's':
				size := e.Size
				switch e.Type {
				case plan.TypeDir:
					size = -1
				case plan.TypeSymlink:
					size = int64(len(e.Target)) // as rclone lsf -l sizes a link
				}
				fields = append(fields, fmt.Sprint(size))
			case 't':
				fields = append(fields, time.Unix(0, e.MtimeNs).Local().Format("2006-01-02 15:04:05"))
			case 'h':
				h := ""
				if len(e.Digest) == 32 {
					h = fmt.Sprintf("%x", e.Digest)
				}
				fields = append(fields, h)
			}
		}
		fmt.Fprintln(w, strings.Join(fields, sep))
		return nil
	})
	return exitOf(err, n > 0)
}

func newSizeCmd(a *app) *cobra.Command {
	return inspectCmd(&cobra.Command{
		Use:   "size LOCATION",
		Short: "Count the files beneath LOCATION and their bytes, as rclone size",
		Long: `Size counts the regular files beneath LOCATION and adds up their sizes,
printed as rclone size prints them:

  Total objects: 1.234k (1234)
  Total size: 5.678 MiB (5953782 Byte)

--json prints {"count":N,"bytes":N,"sizeless":0} instead, rclone's keys
(sizeless is always 0: every file's size is known). A peer counts its own
tree.`,
		Example: `  xfer size ./data
  xfer size --json nodeA:/proj`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var count, bytes int64
			n, err := a.eachEntry(cmd, args[0], walkSpec{recursive: true}, func(e plan.Entry) error {
				if e.Type == plan.TypeFile {
					count++
					bytes += e.Size
				}
				return nil
			})
			if err != nil {
				return err
			}
			if a.v.GetBool("json") {
				fmt.Fprintf(a.stdout, "{\"count\":%d,\"bytes\":%d,\"sizeless\":0}\n", count, bytes)
			} else {
				fmt.Fprintf(a.stdout, "Total objects: %s (%d)\nTotal size: %s (%d Byte)\n", countText(count), count, byteText(bytes), bytes)
			}
			return exitOf(nil, n > 0)
		},
	}, cobra.ExactArgs(1))
}

// countText is n as rclone prints counts: 3, 1.234k, 5M.
func countText(n int64) string {
	return scaled(n, 1000, []string{"", "k", "M", "G", "T", "P", "E"}, "")
}

// byteText is n as rclone prints sizes: 11 B, 1.001 KiB, 4 MiB.
func byteText(n int64) string {
	return scaled(n, 1024, []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}, " ") + "B"
}

// scaled is n in the largest unit of base that keeps it at least 1, with
// three decimals unless it is whole, and the unit's suffix after sep.
func scaled(n int64, base float64, units []string, sep string) string {
	v, i := float64(n), 0
	for v >= base && i < len(units)-1 {
		v /= base
		i++
	}
	s := fmt.Sprintf("%.3f", v)
	if math.Floor(v) == v {
		s = fmt.Sprintf("%.0f", v)
	}
	if sep != "" {
		return s + sep + units[i]
	}
	return s + units[i]
}

func newCatCmd(a *app) *cobra.Command {
	c := inspectCmd(&cobra.Command{
		Use:   "cat LOCATION...",
		Short: "Write files' contents to standard output, as rclone cat",
		Long: `Cat writes the contents of each LOCATION to standard output, one after the
other. A LOCATION that is a directory stands for every regular file beneath
it (in path order, after the filters). A peer reads its own files, within
its root; reading is allowed on read-only servers.

--head N and --tail N write only the first or last N bytes of each file;
--offset and --count pick a range (a negative --offset counts from the
end), as rclone cat's flags of the same names do.`,
		Example: `  xfer cat xfer://node1:7878/proj/README
  xfer cat nodeA:/logs --include '*.log' --tail 1K`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runCat(cmd, args) },
	}, cobra.MinimumNArgs(1))
	f := c.Flags()
	sizeFlag(f, "head", "", "write only the first SIZE bytes of each file")
	sizeFlag(f, "tail", "", "write only the last SIZE bytes of each file")
	f.Int64("offset", 0, "start at this byte of each file (negative: from the end)")
	f.Int64("count", -1, "write at most this many bytes of each file (-1: all)")
	return c
}

// catRange is the bytes of a file cat writes: from offset (negative: from
// the end) count bytes (-1: to the end).
type catRange struct{ offset, count int64 }

// of is r for a file of size bytes: a start within it, and a count.
func (r catRange) of(size int64) (int64, int64) {
	off := r.offset
	if off < 0 {
		off = max(size+off, 0)
	}
	return off, r.count
}

func (a *app) catRange() (catRange, error) {
	off, _ := strconv.ParseInt(a.v.GetString("offset"), 10, 64)
	count, _ := strconv.ParseInt(a.v.GetString("count"), 10, 64)
	r := catRange{offset: off, count: count}
	ranged := off != 0 || count != -1
	head, tail := a.v.GetString("head"), a.v.GetString("tail")
	if (head != "" || tail != "") && ranged || head != "" && tail != "" {
		return r, exitcode.Usagef("--head, --tail and --offset/--count do not go together: choose one")
	}
	if r.count < -1 {
		return r, exitcode.Usagef("--count %d: want -1 (all) or more", r.count)
	}
	for _, s := range []struct{ flag, v string }{{"head", head}, {"tail", tail}} {
		if s.v == "" {
			continue
		}
		n, err := parseSize(s.v)
		if err != nil {
			return r, exitcode.Usagef("--%s: %v", s.flag, err)
		}
		if s.flag == "head" {
			r = catRange{0, n}
		} else {
			r = catRange{-n, -1}
			if n == 0 {
				r = catRange{0, 0}
			}
		}
	}
	return r, nil
}

func (a *app) runCat(cmd *cobra.Command, args []string) error {
	if err := a.noJSON(cmd); err != nil {
		return err
	}
	rng, err := a.catRange()
	if err != nil {
		return err
	}
	flt, err := a.inspectFilter(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	w := bufio.NewWriterSize(a.stdout, 1<<20)
	defer w.Flush()
	failed := 0
	for _, arg := range args {
		t, err := a.openTree(ctx, arg)
		if err != nil {
			return err
		}
		cat := func(e plan.Entry) error {
			off, n := rng.of(e.Size)
			err := t.Cat(ctx, e.Path, off, n, w)
			var we *transfer.WriteError
			switch {
			case err == nil:
			case stopped(ctx):
				return interrupted(ctx)
			case errors.As(err, &we), exitcode.Code(err) == exitcode.Peer:
				return err
			default:
				fmt.Fprintf(a.stderr, "xfer: %s: %s\n", shownPath(t, e.Path), userMessage(err))
				failed++
			}
			return nil
		}
		top := t.Top()
		switch {
		case t.IsDir():
			var n int
			n, err = a.walkTree(ctx, t, walkSpec{recursive: true, filter: flt, checkers: a.v.GetInt("checkers")}, func(e plan.Entry) error {
				if e.Type != plan.TypeFile {
					return nil
				}
				return cat(e)
			})
			failed += n
		case top.Type == plan.TypeFile:
			top.Path = ""
			err = cat(top)
		default:
			fmt.Fprintf(a.stderr, "xfer: %s: not a regular file\n", progress.EscapeInvalid(t.String()))
			failed++
		}
		t.Close()
		if err != nil {
			return err
		}
	}
	return exitOf(nil, failed > 0)
}
