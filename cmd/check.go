package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer"
)

func newCheckCmd(a *app) *cobra.Command {
	c := inspectCmd(&cobra.Command{
		Use:   "check SRC DST",
		Short: "Compare SRC and DST without transferring anything, as rclone check",
		Long: `Check compares the files of SRC and DST (any locations: local, served
peers, named remotes, clusters, ssh://) and transfers nothing. Files are
compared by size and by BLAKE3 of their content, which each side computes
where its files are: a peer hashes its own files, so no file crosses the
network. --size-only compares sizes alone. Symlinks are compared by their
targets; directories are not compared (their files are).

Each file that is not the same on both sides is printed on standard output
in the form of rclone check's --combined report:

  + PATH   only in SRC (missing on DST)
  - PATH   only in DST (missing on SRC)
  * PATH   in both, but different
  ! PATH   could not be read or hashed on one side

--combined FILE writes every file's line to FILE ("-": standard output),
the identical ones too ("= PATH"); --match, --differ, --missing-on-dst,
--missing-on-src and --error FILE write the paths of one kind, as rclone
check's flags of the same names do. A report file of "-" takes the place of
the default lines. --one-way leaves out files only in DST. A summary goes
to stderr (-q: none).
--json prints one "check" event per file that differs and a summary
instead. The filters apply as in copy and sync.

Exit code 0: identical; 1: something differs, is missing or could not be
read; 2: usage (a location that does not exist among them); 3: a peer could
not be reached.`,
		Example: `  xfer check ./data xfer://node1:7878/data
  xfer check nodeA:/proj nodeB:/proj --json
  xfer check ./data ./copy --size-only --exclude '*.tmp'`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runCheck(cmd, args[0], args[1]) },
	}, cobra.ExactArgs(2))
	f := c.Flags()
	f.BoolP("checksum", "c", true, "compare the BLAKE3 of files of the same size (each side hashes its own); false: as --size-only")
	f.Bool("size-only", false, "compare sizes only, not content")
	f.Bool("one-way", false, "check only that SRC's files are in DST and the same; files only in DST are not reported")
	for _, r := range checkReportFlags() {
		f.String(r.flag, "", r.usage)
	}
	return c
}

// Check results, the first character of a combined line and the
// "result" of a check event.
const (
	checkSame      = "="
	checkMissDst   = "+"
	checkMissSrc   = "-"
	checkDiffer    = "*"
	checkError     = "!"
	checkEventKind = "check"
)

// checkResultName is a result's name in JSON.
func checkResultName(result string) string {
	switch result {
	case checkSame:
		return "identical"
	case checkMissDst:
		return "missing_on_dst"
	case checkMissSrc:
		return "missing_on_src"
	case checkDiffer:
		return "differ"
	}
	return "error"
}

// checkEvent is one --json line of check for a file that differs.
type checkEvent struct {
	Event  string `json:"event"`
	Time   string `json:"time"`
	Result string `json:"result"`        // missing_on_dst, missing_on_src, differ, error
	Why    string `json:"why,omitempty"` // differ: size, content or type; error: the reason
	Path   string `json:"path"`
}

// checkSummary is check's last --json line.
type checkSummary struct {
	Event        string  `json:"event"`
	Time         string  `json:"time"`
	Checksum     bool    `json:"checksum"`
	Identical    int64   `json:"identical"`
	Differ       int64   `json:"differ"`
	MissingOnDst int64   `json:"missing_on_dst"`
	MissingOnSrc int64   `json:"missing_on_src"`
	Errors       int64   `json:"errors"`
	DurationS    float64 `json:"duration_s"`
	ExitCode     int     `json:"exit_code"`
}

// checker compares two listings and reports what it finds.
type checker struct {
	a        *app
	checksum bool
	asJSON   bool
	names    progress.NameCodec[checkEvent]
	oneWay   bool          // --one-way: extra files at DST are not reported
	out      *bufio.Writer // standard output
	outs     []checkOut    // the report files (--combined, --differ, ...)
	// stdoutTaken: a report file is "-", so the differences are not
	// printed on their own.
	stdoutTaken bool
	sum         checkSummary
}

// checkOut is one report file of check: every line (combined), or the
// paths of one result.
type checkOut struct {
	result string // "" for --combined
	w      *bufio.Writer
}

// checkReportFlags are check's report-file flags, rclone's, with the
// result each lists ("" for every result, with its sign).
func checkReportFlags() []struct{ flag, result, usage string } {
	return []struct{ flag, result, usage string }{
		{"combined", "", "write every file's line (=, +, -, *, !) to this file (-: standard output)"},
		{"match", checkSame, "write the paths of identical files to this file (-: standard output)"},
		{"differ", checkDiffer, "write the paths of files that differ to this file (-: standard output)"},
		{"missing-on-dst", checkMissDst, "write the paths of files only in SRC to this file (-: standard output)"},
		{"missing-on-src", checkMissSrc, "write the paths of files only in DST to this file (-: standard output)"},
		{"error", checkError, "write the paths of files that could not be read or hashed to this file (-: standard output)"},
	}
}

func (a *app) runCheck(cmd *cobra.Command, srcArg, dstArg string) error {
	start := time.Now()
	ctx := cmd.Context()
	flt, err := a.inspectFilter(cmd)
	if err != nil {
		return err
	}
	ck := &checker{a: a, checksum: a.v.GetBool("checksum") && !a.v.GetBool("size-only"), asJSON: a.v.GetBool("json"),
		oneWay: a.v.GetBool("one-way"), out: bufio.NewWriter(a.stdout)}
	defer ck.out.Flush()
	if ck.asJSON {
		ck.names = progress.NewNameCodec[checkEvent]("Path")
	}
	for _, r := range checkReportFlags() {
		name := a.v.GetString(r.flag)
		if name == "" {
			continue
		}
		out := checkOut{result: r.result, w: ck.out}
		if name == "-" {
			ck.stdoutTaken = true
		} else {
			f, err := os.Create(name)
			if err != nil {
				return exitcode.Usagef("--%s %s: %s", r.flag, name, fileProblem(err))
			}
			defer f.Close()
			out.w = bufio.NewWriter(f)
			defer out.w.Flush()
		}
		ck.outs = append(ck.outs, out)
	}
	err = ck.compareLocations(ctx, srcArg, dstArg, walkSpec{recursive: true, checksum: ck.checksum, filter: flt, checkers: a.v.GetInt("checkers")}, start)
	if err != nil && ck.asJSON && !errors.Is(err, errSilent) {
		return ck.fail(err, start)
	}
	return err
}

// compareLocations opens both locations, compares them and prints the summary.
func (ck *checker) compareLocations(ctx context.Context, srcArg, dstArg string, spec walkSpec, start time.Time) error {
	src, err := ck.a.openTree(ctx, srcArg)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := ck.a.openTree(ctx, dstArg)
	if err != nil {
		return err
	}
	defer dst.Close()
	if src.IsDir() != dst.IsDir() {
		return exitcode.Usagef("%s and %s: one is a directory and the other is not; check compares two directories or two files", src, dst)
	}
	if src.IsDir() {
		err = ck.run(ctx, src, dst, spec)
	} else {
		ck.compareFiles(ctx, src, dst)
	}
	ck.sum.DurationS = time.Since(start).Seconds()
	if err != nil {
		return err
	}
	return ck.finish(src, dst)
}

// checkFailure is the error event of a check --json that could not
// finish (a location missing or unreachable, an interruption).
type checkFailure struct {
	Event string `json:"event"`
	Time  string `json:"time"`
	Error string `json:"error"`
}

// fail ends a check --json that stopped on err as every check --json
// ends: its error on stderr and as an event, then check's own summary
// (the counts so far) with the exit code of err.
func (ck *checker) fail(err error, start time.Time) error {
	code, msg := exitcode.Code(err), userMessage(err)
	fmt.Fprintf(ck.a.stderr, "xfer: %s\n", msg)
	now := time.Now().UTC().Format(progress.TimeFormat)
	s := ck.sum
	s.Event, s.Time, s.Checksum, s.ExitCode = progress.KindSummary, now, ck.checksum, code
	s.Errors++
	s.DurationS = time.Since(start).Seconds()
	for _, v := range []any{checkFailure{Event: progress.KindError, Time: now, Error: msg}, s} {
		if b, err := json.Marshal(v); err == nil {
			ck.out.Write(append(b, '\n'))
		}
	}
	return silent(code)
}

// fileStream is a listing of the files (and symlinks) of a tree that a
// walkSpec admits, with unreadable directories yielded too, so that
// nothing beneath them is reported missing on the other side; it is read
// ahead on a goroutine of its own.
type fileStream struct {
	next func() (plan.Entry, bool)
	stop func()
	err  error
}

// fileStream starts listing t.
func (a *app) fileStream(ctx context.Context, t *transfer.Tree, spec walkSpec) *fileStream {
	ch := make(chan plan.Entry, 256)
	done := make(chan struct{})
	f := &fileStream{}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(ch)
		l := spec.filter.Lister(t.List(ctx, spec.checksum, spec.checkers))
		for {
			e, err := l.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					f.err = a.treeErr(ctx, t, err)
				}
				return
			}
			keep := e.Err != "" || (e.Type == plan.TypeFile || e.Type == plan.TypeSymlink) && spec.filter.Match(e)
			if !keep {
				continue
			}
			select {
			case ch <- e:
			case <-done:
				return
			}
		}
	}()
	f.next = func() (plan.Entry, bool) {
		e, ok := <-ch
		// A listing that failed ends here: what it did not list is
		// not missing (f.err is read after ch closed, so after it was set).
		return e, ok
	}
	f.stop = func() {
		close(done)
		cancel()
		for range ch {
		}
	}
	return f
}

// run merges the two sorted listings, both read at once (each side hashes
// while the other does).
func (ck *checker) run(ctx context.Context, src, dst *transfer.Tree, spec walkSpec) error {
	sf, df := ck.a.fileStream(ctx, src, spec), ck.a.fileStream(ctx, dst, spec)
	s, sok := sf.next()
	d, dok := df.next()
	skip := "" // a directory one side could not read: nothing beneath it is compared
	for (sok || dok) && (sok || sf.err == nil) && (dok || df.err == nil) {
		var (
			e        plan.Entry
			fromSrc  = sok && (!dok || plan.Compare(s.Path, d.Path) <= 0)
			fromDst  = dok && (!sok || plan.Compare(s.Path, d.Path) >= 0)
			advanceS = fromSrc
			advanceD = fromDst
		)
		if fromSrc {
			e = s
		} else {
			e = d
		}
		switch {
		case skip != "" && strings.HasPrefix(e.Path, skip+"/"):
		case (fromSrc && s.Err != "") || (fromDst && d.Err != ""):
			why, in := s.Err, src
			if !fromSrc || s.Err == "" {
				why, in = d.Err, dst
			}
			ck.reportIn(in, checkError, e.Path, "cannot read: "+why)
			if (fromSrc && s.Type == plan.TypeDir) || (fromDst && d.Type == plan.TypeDir) {
				skip = e.Path
			}
		case fromSrc && fromDst:
			result, why := ck.compare(ctx, src, dst, s, d)
			ck.report(result, e.Path, why)
		case fromSrc:
			ck.report(checkMissDst, e.Path, "")
		default:
			ck.report(checkMissSrc, e.Path, "")
		}
		if advanceS {
			s, sok = sf.next()
		}
		if advanceD {
			d, dok = df.next()
		}
	}
	sf.stop()
	df.stop()
	if stopped(ctx) {
		return interrupted(ctx)
	}
	if sf.err != nil {
		return sf.err
	}
	return df.err
}

// compareFiles compares two locations that are files (by any names), as
// if they were one path of two trees.
func (ck *checker) compareFiles(ctx context.Context, src, dst *transfer.Tree) {
	s, d := src.Top(), dst.Top()
	d.Path = s.Path
	for _, side := range []struct {
		t *transfer.Tree
		e *plan.Entry
	}{{src, &s}, {dst, &d}} {
		if ck.checksum && side.e.Type == plan.TypeFile && s.Size == d.Size {
			h, err := side.t.Hash(ctx, "")
			if err != nil {
				ck.report(checkError, s.Path, fmt.Sprintf("hashing on %s: %s", side.t, userMessage(err)))
				return
			}
			side.e.Digest = h[:]
		}
	}
	result, why := ck.compare(ctx, src, dst, s, d)
	ck.report(result, s.Path, why)
}

// compare decides about a path both sides hold (files or symlinks).
func (ck *checker) compare(ctx context.Context, src, dst *transfer.Tree, s, d plan.Entry) (string, string) {
	switch {
	case s.Type != d.Type:
		return checkDiffer, "type"
	case s.Type == plan.TypeSymlink:
		if s.Target != d.Target {
			return checkDiffer, "target"
		}
		return checkSame, ""
	case s.Size != d.Size:
		return checkDiffer, "size"
	case !ck.checksum:
		return checkSame, ""
	}
	sd, dd := s.Digest, d.Digest
	for _, side := range []struct {
		t  *transfer.Tree
		dg *[]byte
	}{{src, &sd}, {dst, &dd}} {
		if len(*side.dg) == 32 {
			continue
		}
		// The listing could not hash it: ask once more, for the reason.
		h, err := side.t.Hash(ctx, s.Path)
		if err != nil {
			return checkError, fmt.Sprintf("hashing on %s: %s", side.t, userMessage(err))
		}
		*side.dg = h[:]
	}
	if !bytes.Equal(sd, dd) {
		return checkDiffer, "content"
	}
	return checkSame, ""
}

// report counts and prints one file's result.
func (ck *checker) report(result, path, why string) { ck.reportIn(nil, result, path, why) }

// reportIn is report of a result that belongs to the tree in (nil: to
// both): an error line on stderr names the file as in's location does.
func (ck *checker) reportIn(in *transfer.Tree, result, path, why string) {
	if result == checkMissSrc && ck.oneWay {
		return
	}
	switch result {
	case checkSame:
		ck.sum.Identical++
	case checkMissDst:
		ck.sum.MissingOnDst++
	case checkMissSrc:
		ck.sum.MissingOnSrc++
	case checkDiffer:
		ck.sum.Differ++
	case checkError:
		ck.sum.Errors++
	}
	for _, o := range ck.outs {
		switch o.result {
		case "":
			fmt.Fprintf(o.w, "%s %s\n", result, path)
		case result:
			fmt.Fprintf(o.w, "%s\n", path)
		}
	}
	if result == checkSame {
		return
	}
	switch {
	case ck.asJSON:
		b, err := ck.names.Marshal(checkEvent{Event: checkEventKind, Time: time.Now().UTC().Format(progress.TimeFormat),
			Result: checkResultName(result), Why: progress.EscapeInvalid(why), Path: path})
		if err == nil {
			ck.out.Write(append(b, '\n'))
		}
	case !ck.stdoutTaken:
		fmt.Fprintf(ck.out, "%s %s\n", result, path)
	}
	if result == checkError && !ck.asJSON {
		shown := progress.EscapeInvalid(path)
		if in != nil {
			shown = shownPath(in, path)
		}
		fmt.Fprintf(ck.a.stderr, "xfer: %s: %s\n", shown, why)
	}
}

// finish prints the summary and chooses the exit code.
func (ck *checker) finish(src, dst *transfer.Tree) error {
	s := &ck.sum
	bad := s.Differ + s.MissingOnDst + s.MissingOnSrc + s.Errors
	if bad > 0 {
		s.ExitCode = exitcode.Partial
	}
	s.Event, s.Time, s.Checksum = progress.KindSummary, time.Now().UTC().Format(progress.TimeFormat), ck.checksum
	switch {
	case ck.asJSON:
		b, err := json.Marshal(s)
		if err == nil {
			ck.out.Write(append(b, '\n'))
		}
	case !ck.a.v.GetBool("quiet"):
		how := "size and BLAKE3"
		if !ck.checksum {
			how = "size"
		}
		verdict := "identical"
		if bad > 0 {
			verdict = fmt.Sprintf("%d difference", bad)
			if bad > 1 {
				verdict += "s"
			}
		}
		fmt.Fprintf(ck.a.stderr, "check %s against %s by %s: %s (%d identical, %d differ, %d missing on DST, %d missing on SRC, %d errors)\n",
			progress.EscapeInvalid(src.String()), progress.EscapeInvalid(dst.String()), how, verdict,
			s.Identical, s.Differ, s.MissingOnDst, s.MissingOnSrc, s.Errors)
	}
	return exitOf(nil, bad > 0)
}
