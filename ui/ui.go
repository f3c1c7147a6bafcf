// Package ui renders the event stream of a transfer (package progress) for
// the three audiences of xfer: people at a terminal (a live progress bar),
// cron jobs and logs (plain lines, no animation) and scripts (--json: one
// JSON object per line, the last one being the summary).
//
// A Printer is a progress.Sink: the transfer engine emits events into it
// from any number of goroutines, and the command calls Finish once with the
// run's summary when the engine is done.
package ui

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/xfer-io/xfer/internal/plural"
	"github.com/xfer-io/xfer/internal/progress"
)

// Mode selects how a Printer renders events.
type Mode int

// Output modes.
const (
	// ModeAuto is ModeBar when Stdout is a terminal, ModePlain otherwise.
	ModeAuto Mode = iota
	// ModeBar draws a live progress display on Stdout (rates, a labeled
	// ETA, the files in flight), fitted to the terminal's width; errors
	// and notices are printed above it on Stderr.
	ModeBar
	// ModePlain prints lines only: no animation, no carriage returns.
	ModePlain
	// ModeJSON prints every event but progress as one JSON object per line
	// on Stdout, then the summary.
	ModeJSON
	// ModeQuiet prints errors only (and why a run stopped early): no
	// summary, no dry-run plan.
	ModeQuiet
)

// String returns the mode's name: auto, bar, plain, json or quiet.
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeBar:
		return "bar"
	case ModePlain:
		return "plain"
	case ModeJSON:
		return "json"
	case ModeQuiet:
		return "quiet"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Options configures a Printer.
type Options struct {
	// Mode is the output mode. ModeAuto picks ModeBar when Stdout is an
	// *os.File that is a terminal and ModePlain otherwise.
	Mode Mode
	// Stdout receives results: the bar, plan lines, verbose lines, JSON
	// lines and the summary. Nil means os.Stdout.
	Stdout io.Writer
	// Stderr receives errors and notices (except in ModeJSON, where they
	// are JSON lines on Stdout). Nil means os.Stderr.
	Stderr io.Writer
	// DryRun makes the summary describe what would have been done.
	DryRun bool
	// Verbose also prints one line per transferred or deleted file (bar and
	// plain modes), and in the summary why the transport was chosen.
	Verbose bool
	// Removal makes the summary that of a removal (delete, purge): what
	// was deleted, without transfer counts.
	Removal bool
	// Stats prints the counters so far every Stats (0: never): a
	// "stats:" line in the bar and plain modes, a stats event in
	// ModeJSON, nothing in ModeQuiet.
	Stats time.Duration
	// Progress (-P) asks for the live display whatever Stdout is: the bar
	// on a terminal; elsewhere, where the bar cannot redraw in place, a
	// stats line every ProgressInterval (unless Stats is shorter).
	Progress bool
}

// ProgressInterval is how often -P prints a stats line when the output is
// not a terminal, as often as rclone -P redraws.
const ProgressInterval = 500 * time.Millisecond

// barInterval is the minimum time between two redraws of the bar.
const barInterval = 100 * time.Millisecond

// Printer renders events for one run. It implements progress.Sink and is
// safe for concurrent use.
type Printer struct {
	mode    Mode
	out     io.Writer
	errw    io.Writer
	dryRun  bool
	verbose bool
	removal bool
	// interval throttles bar redraws.
	interval time.Duration

	// now is the clock (time stamps of JSON lines, rates).
	now func() time.Time

	mu       sync.Mutex
	finished bool

	// Bar mode. bar exists from New on so that its clock, and therefore
	// the rate and ETA, start with the run.
	bar      *bar
	latest   progress.Event // last progress event received
	lastDraw time.Time

	// What the plan events of a dry run add up to.
	planFiles, planBytes, planDeletes int64
	planRmdirs, planRemoved           int64

	// --stats: every stats, counted from start.
	stats     time.Duration
	start     time.Time
	lastStats time.Time
}

// New returns a Printer writing to o.Stdout and o.Stderr in the mode o.Mode
// (an unknown mode is treated as ModePlain).
func New(o Options) *Printer {
	p := &Printer{
		mode:     o.Mode,
		out:      o.Stdout,
		errw:     o.Stderr,
		dryRun:   o.DryRun,
		verbose:  o.Verbose,
		removal:  o.Removal,
		interval: barInterval,
		now:      time.Now,
	}
	if p.out == nil {
		p.out = os.Stdout
	}
	if p.errw == nil {
		p.errw = os.Stderr
	}
	switch p.mode {
	case ModeAuto:
		p.mode = ModePlain
		if f, ok := p.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			p.mode = ModeBar
		}
	case ModeBar, ModePlain, ModeJSON, ModeQuiet:
	default:
		p.mode = ModePlain
	}
	if p.mode == ModeBar {
		p.bar = newBar(p.out, terminalSize(p.out), p.now())
	}
	p.stats = o.Stats
	if o.Progress && p.mode != ModeBar && (p.stats <= 0 || p.stats > ProgressInterval) {
		p.stats = ProgressInterval
	}
	p.start = p.now()
	p.lastStats = p.start
	return p
}

// terminalSize returns a function that queries w's terminal for its size
// (columns, rows) at each call, so that the display follows a resized
// window; 80x24 when w is not a terminal.
func terminalSize(w io.Writer) func() (int, int) {
	return func() (int, int) {
		if f, ok := w.(*os.File); ok {
			if c, r, err := term.GetSize(int(f.Fd())); err == nil && c > 0 {
				return c, r
			}
		}
		return 80, 24
	}
}

// Mode returns the mode in use, ModeAuto resolved.
func (p *Printer) Mode() Mode { return p.mode }

// Emit renders one event. Summary events are ignored (Finish prints the
// summary) and so is everything emitted after Finish.
func (p *Printer) Emit(e progress.Event) {
	switch {
	case e.Event == progress.KindSummary:
		return
	case p.mode == ModeJSON && e.Event != progress.KindProgress:
		p.writeJSON(e)
		return
	case e.Event == progress.KindProgress:
		p.mu.Lock()
		if p.mode == ModeBar {
			p.progress(e)
		}
		stats, due := p.statsDue(e)
		p.mu.Unlock()
		if !due {
			return
		}
		if p.mode == ModeJSON {
			p.writeJSON(stats)
			return
		}
		p.mu.Lock()
		if !p.finished {
			p.printLine(p.out, statsLine(stats))
		}
		p.mu.Unlock()
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	if isPlan(e) {
		p.countPlan(e)
	}
	if w, line := p.line(e); line != "" {
		p.printLine(w, line)
	}
}

// Finish prints the summary of the run: a JSON line in ModeJSON, a line
// such as "transferred 12 files (3.4 MiB) in 1.2s (2.8 MiB/s), skipped 3,
// deleted 1, errors 0, proto tcp" in the bar and plain modes (after
// clearing the bar), nothing in ModeQuiet. Only the first call has an
// effect, and events emitted after it are dropped.
func (p *Printer) Finish(s progress.Summary) {
	if s.Event == "" {
		s.Event = progress.KindSummary
	}
	if math.IsNaN(s.DurationS) || math.IsInf(s.DurationS, 0) || s.DurationS < 0 {
		s.DurationS = 0
	}
	s.DryRun = s.DryRun || p.dryRun

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.bar != nil {
		p.bar.clear()
	}
	p.bar = nil

	switch p.mode {
	case ModeJSON:
		if s.Time == "" {
			s.Time = progress.Stamp(p.now())
		}
		p.write(p.out, marshalLine(s))
	case ModeBar, ModePlain:
		var b strings.Builder
		b.WriteString(p.summaryLine(s))
		b.WriteByte('\n')
		names := make([]string, 0, len(s.Agents))
		for name := range s.Agents {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			a := s.Agents[name]
			fmt.Fprintf(&b, "agent %s: %s (%s)", printable(name), plural.Of(a.Files, "file"), FormatBytes(a.Bytes))
			if a.DirsRead > 0 {
				fmt.Fprintf(&b, ", read %s", plural.Of(a.DirsRead, "directory"))
			}
			if a.Lost {
				b.WriteString(", lost")
			}
			b.WriteByte('\n')
		}
		p.write(p.out, []byte(b.String()))
	}
}

// writeJSON prints e as one JSON line, stamped with the time.
func (p *Printer) writeJSON(e progress.Event) {
	if e.Time == "" {
		e.Time = progress.Stamp(p.now())
	}
	line := marshalLine(e)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.write(p.out, line)
	}
}

// marshalLine encodes v as compact JSON followed by a newline. Events and
// summaries hold only strings and numbers, so encoding cannot fail.
func marshalLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("ui: encoding " + fmt.Sprintf("%T", v) + ": " + err.Error())
	}
	return buf.Bytes()
}

// write writes b in one call. Output errors (a closed pipe) are not the
// run's errors and are ignored, as fmt.Println would.
func (p *Printer) write(w io.Writer, b []byte) { _, _ = w.Write(b) }

// line returns the text (without newline) a human mode prints for e, and
// where; "" when the event is not shown.
func (p *Printer) line(e progress.Event) (io.Writer, string) {
	switch e.Event {
	case progress.KindError:
		return p.errw, "xfer: ERROR " + withPath(e.Path, cmp.Or(e.Error, e.Msg))
	case progress.KindStopped:
		return p.errw, "xfer: " + printable(e.Msg)
	}
	if p.mode == ModeQuiet {
		return nil, ""
	}
	if isPlan(e) {
		return p.out, planLine(e)
	}
	switch e.Event {
	case progress.KindNotice:
		return p.errw, "xfer: NOTICE " + withPath(e.Path, cmp.Or(e.Msg, e.Error))
	case progress.KindTransfer:
		if p.verbose {
			return p.out, "transferred " + printable(e.Path) + " (" + FormatBytes(e.Bytes) + ")"
		}
	case progress.KindDelete:
		if p.verbose {
			return p.out, "deleted " + printable(e.Path)
		}
	case progress.KindRmdir:
		if p.verbose {
			return p.out, "removed directory " + printable(e.Path)
		}
	case progress.KindSourceRemoved:
		if p.verbose {
			return p.out, "removed from the source " + printable(e.Path)
		}
	}
	return nil, ""
}

// isPlan reports whether e is an event of a dry run, which carries the
// action it stands for; it is shown as a plan line.
func isPlan(e progress.Event) bool {
	return e.DryRun || e.Event == progress.KindPlan || e.Action != ""
}

// planLine formats a dry-run plan event: "create path (1.2 KiB)",
// "update path (...)", "link path", "delete path", "mkdir path",
// "symlink path".
func planLine(e progress.Event) string {
	action := e.Action
	if action == "" {
		action = e.Event
	}
	s := printable(action) + " " + printable(e.Path)
	if e.Action == "create" || e.Action == "update" {
		s += " (" + FormatBytes(e.Bytes) + ")"
	}
	return s
}

// removalLine is the summary of a removal (delete, purge).
func (p *Printer) removalLine(s progress.Summary) string {
	files, dirs := s.FilesDeleted, s.DirsRemoved
	if s.DryRun {
		files, dirs = max(files, p.planDeletes), max(dirs, p.planRmdirs)
		return fmt.Sprintf("dry run: would delete %s and %s, errors %d", plural.Of(files, "file"), plural.Of(dirs, "directory"), s.Errors)
	}
	return fmt.Sprintf("deleted %s and %s in %s, errors %d", plural.Of(files, "file"), plural.Of(dirs, "directory"), formatSeconds(s.DurationS), s.Errors)
}

// countPlan adds an event of a dry run to what it would do.
func (p *Printer) countPlan(e progress.Event) {
	switch e.Action {
	case "create", "update", "link":
		p.planFiles++
		p.planBytes += e.Bytes
	case "delete":
		p.planDeletes++
	case "rmdir":
		p.planRmdirs++
	case "remove-source":
		p.planRemoved++
	}
}

// statsDue returns the stats event of progress event e when --stats is
// due (the interval passed since the last one). Called with p.mu held.
func (p *Printer) statsDue(e progress.Event) (progress.Event, bool) {
	if p.stats <= 0 || p.finished || p.mode == ModeQuiet {
		return progress.Event{}, false
	}
	now := p.now()
	if now.Sub(p.lastStats) < p.stats {
		return progress.Event{}, false
	}
	p.lastStats = now
	el := now.Sub(p.start).Seconds()
	st := progress.Event{Event: progress.KindStats, BytesDone: e.BytesDone, BytesTotal: e.BytesTotal,
		FilesDone: e.FilesDone, FilesTotal: e.FilesTotal, Listing: e.Listing, ElapsedS: el}
	if el > 0 {
		st.RateBps = float64(e.BytesDone) / el
	}
	return st, true
}

// statsLine is the human form of a stats event: "stats: 3.0 MiB of 12 MiB
// (25%), 2 of 8 files, 1.5 MiB/s, elapsed 2s, ETA 6s" ("ETA -" while the
// source is still being listed).
func statsLine(e progress.Event) string {
	var b strings.Builder
	b.WriteString("stats: " + FormatBytes(e.BytesDone) + " of " + FormatBytes(e.BytesTotal))
	if e.BytesTotal > 0 {
		fmt.Fprintf(&b, " (%d%%)", e.BytesDone*100/e.BytesTotal)
	}
	fmt.Fprintf(&b, ", %d of %d files, %s/s, elapsed %s, ETA %s", e.FilesDone, e.FilesTotal,
		FormatBytes(int64(e.RateBps)), time.Duration(e.ElapsedS*float64(time.Second)).Round(100*time.Millisecond), etaText(e.BytesDone, e.BytesTotal, e.RateBps, e.Listing))
	return b.String()
}

// printLine prints line on w, above the progress display if one is
// drawn.
func (p *Printer) printLine(w io.Writer, line string) {
	drawn := p.bar != nil && p.bar.drawn()
	if drawn {
		p.bar.clear()
	}
	p.write(w, []byte(line+"\n"))
	if drawn {
		p.draw()
	}
}

// progress records a progress event and redraws the display unless it was
// redrawn less than p.interval ago.
func (p *Printer) progress(e progress.Event) {
	if p.finished {
		return
	}
	p.latest = e
	now := p.now()
	p.bar.sample(now, e.BytesDone)
	if !p.bar.drawn() || now.Sub(p.lastDraw) >= p.interval {
		p.draw()
	}
}

// draw renders the display for the latest progress event.
func (p *Printer) draw() {
	now := p.now()
	p.bar.draw(p.latest, now)
	p.lastDraw = now
}

// summaryLine is the one-line summary of the human modes.
func (p *Printer) summaryLine(s progress.Summary) string {
	if p.removal {
		return p.removalLine(s)
	}
	if s.DryRun {
		files := max(s.FilesTransferred, p.planFiles)
		size := max(s.PlannedBytes, s.BytesTransferred, p.planBytes)
		line := fmt.Sprintf("dry run: would transfer %s (%s), delete %d",
			plural.Of(files, "file"), FormatBytes(size), max(s.FilesDeleted, p.planDeletes))
		if n := max(s.SourceRemoved, p.planRemoved); n > 0 {
			line += fmt.Sprintf(", remove %d from the source", n)
		}
		if s.Errors > 0 {
			line += fmt.Sprintf(", errors %d", s.Errors)
		}
		return line
	}
	var b strings.Builder
	fmt.Fprintf(&b, "transferred %s (%s) in %s", plural.Of(s.FilesTransferred, "file"),
		FormatBytes(s.BytesTransferred), formatSeconds(s.DurationS))
	if s.DurationS > 0 {
		fmt.Fprintf(&b, " (%s/s)", FormatBytes(int64(float64(s.BytesTransferred)/s.DurationS)))
	}
	fmt.Fprintf(&b, ", skipped %d, deleted %d", s.FilesSkipped, s.FilesDeleted)
	if s.SourceRemoved > 0 || s.DirsRemoved > 0 {
		fmt.Fprintf(&b, ", removed from the source %d (and %s)", s.SourceRemoved, plural.Of(s.DirsRemoved, "directory"))
	}
	fmt.Fprintf(&b, ", errors %d", s.Errors)
	if s.Proto != "" {
		b.WriteString(", proto " + printable(s.Proto))
		if s.ProtoReason != "" && p.verbose {
			b.WriteString(" (" + printable(s.ProtoReason) + ")")
		}
	}
	switch s.SSHData {
	case "direct":
		b.WriteString(", data direct over TCP (control over ssh)")
	case "inline":
		b.WriteString(", data inside ssh")
	}
	switch s.Stopped {
	case "":
	case progress.StoppedInterrupted:
		b.WriteString("; interrupted, not done")
	case progress.StoppedMaxDuration:
		b.WriteString("; stopped at --max-duration, not done")
	case progress.StoppedMaxTransfer:
		b.WriteString("; stopped at --max-transfer, not done")
	default:
		b.WriteString("; stopped (" + printable(s.Stopped) + "), not done")
	}
	return b.String()
}

// FormatBytes formats a byte count with binary (IEC) units: "512 B",
// "1.5 GiB".
func FormatBytes(n int64) string {
	if n < 0 {
		// -(n+1)+1 does not overflow for math.MinInt64.
		return "-" + formatUnsigned(uint64(-(n+1))+1)
	}
	return formatUnsigned(uint64(n))
}

func formatUnsigned(u uint64) string {
	if u < 1024 {
		return strconv.FormatUint(u, 10) + " B"
	}
	units := [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(u)/1024, 0
	// Move up a unit when the value would round to 1024.0.
	for math.Round(v*10) >= 1024*10 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// formatSeconds formats a duration: "1.2s" under a minute, "1h2m3s" above.
func formatSeconds(sec float64) string {
	if sec < 60 {
		return strconv.FormatFloat(sec, 'f', 1, 64) + "s"
	}
	if sec >= math.MaxInt64/float64(time.Second) {
		return strconv.FormatFloat(sec, 'f', 0, 64) + "s"
	}
	return time.Duration(sec * float64(time.Second)).Round(time.Second).String()
}

// withPath formats "path: msg", or msg alone when there is no path.
func withPath(path, msg string) string {
	if path == "" {
		return printable(msg)
	}
	return printable(path) + ": " + printable(msg)
}

// printable quotes s (Go syntax) when it holds control characters or
// invalid UTF-8, so that a file name with a newline or an escape sequence
// cannot break the one-event-per-line output or drive the terminal.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError || unicode.IsControl(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
