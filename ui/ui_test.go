package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivo/uniseg"

	"github.com/xfer-io/xfer/internal/progress"
)

// run feeds events to a Printer writing to buffers, finishes it with sum
// and returns what it wrote to stdout and stderr.
func run(o Options, events []progress.Event, sum progress.Summary) (stdout, stderr string) {
	var out, errw bytes.Buffer
	o.Stdout, o.Stderr = &out, &errw
	p := New(o)
	p.interval = 0
	p.now = fixedNow
	for _, e := range events {
		p.Emit(e)
	}
	p.Finish(sum)
	return out.String(), errw.String()
}

// fixedNow is the clock of the tests' Printers.
func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC) }

// lines splits output into lines, without the final newline.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

var (
	runEvents = []progress.Event{
		{Event: progress.KindProgress, BytesDone: 0, BytesTotal: 3072, FilesTotal: 3},
		{Event: progress.KindMkdir, Path: "dir"},
		{Event: progress.KindTransfer, Path: "dir/a.txt", Bytes: 1024, Digest: "af13"},
		{Event: progress.KindProgress, BytesDone: 1024, BytesTotal: 3072, FilesDone: 1, FilesTotal: 3},
		{Event: progress.KindSkip, Path: "b.txt"},
		{Event: progress.KindError, Path: "c.txt", Error: "permission denied"},
		{Event: progress.KindNotice, Msg: "falling back to tcp"},
		{Event: progress.KindDelete, Path: "old.txt"},
		{Event: progress.KindSymlink, Path: "link"},
	}
	runSummary = progress.Summary{Event: progress.KindSummary, FilesTransferred: 12,
		BytesTransferred: 3565158, FilesSkipped: 3, FilesDeleted: 1, Errors: 1,
		DurationS: 1.25, Proto: "tcp"}

	planEvents = []progress.Event{
		{Event: progress.KindMkdir, Action: "mkdir", Path: "dir", DryRun: true},
		{Event: progress.KindTransfer, Action: "create", Path: "dir/a.txt", Bytes: 1229, DryRun: true},
		{Event: progress.KindTransfer, Action: "update", Path: "b.txt", Bytes: 512, DryRun: true},
		{Event: progress.KindDelete, Action: "delete", Path: "old.txt", DryRun: true},
		{Event: progress.KindSymlink, Action: "symlink", Path: "link", DryRun: true},
		{Event: progress.KindError, Path: "c.txt", Error: "permission denied"},
	}
	planSummary = progress.Summary{Event: progress.KindSummary, DryRun: true, Errors: 1,
		DurationS: 0.1, Proto: "tcp"}

	planLines = []string{
		"mkdir dir",
		"create dir/a.txt (1.2 KiB)",
		"update b.txt (512 B)",
		"delete old.txt",
		"symlink link",
	}
)

func TestHumanModes(t *testing.T) {
	const summaryLine = "transferred 12 files (3.4 MiB) in 1.2s (2.7 MiB/s), skipped 3, deleted 1, errors 1, proto tcp"
	tests := []struct {
		name       string
		opts       Options
		events     []progress.Event
		sum        progress.Summary
		wantStdout []string
		wantStderr []string
	}{
		{
			name:       "plain",
			opts:       Options{Mode: ModePlain},
			events:     runEvents,
			sum:        runSummary,
			wantStdout: []string{summaryLine},
			wantStderr: []string{"xfer: ERROR c.txt: permission denied", "xfer: NOTICE falling back to tcp"},
		},
		{
			name:   "plain verbose",
			opts:   Options{Mode: ModePlain, Verbose: true},
			events: runEvents,
			sum:    runSummary,
			wantStdout: []string{
				"transferred dir/a.txt (1.0 KiB)",
				"deleted old.txt",
				summaryLine,
			},
			wantStderr: []string{"xfer: ERROR c.txt: permission denied", "xfer: NOTICE falling back to tcp"},
		},
		{
			name:       "quiet prints only errors",
			opts:       Options{Mode: ModeQuiet, Verbose: true},
			events:     runEvents,
			sum:        runSummary,
			wantStderr: []string{"xfer: ERROR c.txt: permission denied"},
		},
		{
			name:       "plain dry run",
			opts:       Options{Mode: ModePlain, DryRun: true},
			events:     planEvents,
			sum:        planSummary,
			wantStdout: append(planLines[:len(planLines):len(planLines)], "dry run: would transfer 2 files (1.7 KiB), delete 1, errors 1"),
			wantStderr: []string{"xfer: ERROR c.txt: permission denied"},
		},
		{
			name:       "quiet dry run prints only errors",
			opts:       Options{Mode: ModeQuiet, DryRun: true},
			events:     planEvents,
			sum:        planSummary,
			wantStderr: []string{"xfer: ERROR c.txt: permission denied"},
		},
		{
			name: "interrupted run: one line, summary marked",
			opts: Options{Mode: ModePlain},
			events: []progress.Event{{Event: progress.KindStopped,
				Msg: "interrupted by SIGINT before the run was done: rerun the same command to continue"}},
			sum: progress.Summary{FilesTransferred: 2, BytesTransferred: 2048, DurationS: 2, Proto: "local",
				Stopped: progress.StoppedInterrupted},
			wantStdout: []string{"transferred 2 files (2.0 KiB) in 2.0s (1.0 KiB/s), skipped 0, deleted 0, errors 0, proto local; interrupted, not done"},
			wantStderr: []string{"xfer: interrupted by SIGINT before the run was done: rerun the same command to continue"},
		},
		{
			name: "quiet still says why a run stopped",
			opts: Options{Mode: ModeQuiet},
			events: []progress.Event{{Event: progress.KindStopped, Msg: "stopped after --max-duration 1s"},
				{Event: progress.KindNotice, Msg: "retrying"}},
			sum:        progress.Summary{Stopped: progress.StoppedMaxDuration},
			wantStderr: []string{"xfer: stopped after --max-duration 1s"},
		},
		{
			name: "summary details",
			opts: Options{Mode: ModePlain},
			sum: progress.Summary{FilesTransferred: 1, BytesTransferred: 512, DurationS: 125,
				Proto: "rdma", ProtoReason: "peer supports it",
				Agents: map[string]progress.AgentStats{
					"node2": {Files: 2, Bytes: 3 << 30, Lost: true},
					"node1": {Files: 1, Bytes: 1 << 20, DirsRead: 12},
				}},
			wantStdout: []string{
				"transferred 1 file (512 B) in 2m5s (4 B/s), skipped 0, deleted 0, errors 0, proto rdma",
				"agent node1: 1 file (1.0 MiB), read 12 directories",
				"agent node2: 2 files (3.0 GiB), lost",
			},
		},
		{
			name: "the reason for the transport only with -v",
			opts: Options{Mode: ModePlain, Verbose: true},
			sum: progress.Summary{FilesTransferred: 1, BytesTransferred: 512, DurationS: 1,
				Proto: "tcp", ProtoReason: "rdma: no RDMA device"},
			wantStdout: []string{
				"transferred 1 file (512 B) in 1.0s (512 B/s), skipped 0, deleted 0, errors 0, proto tcp (rdma: no RDMA device)",
			},
		},
		{
			name: "control characters are quoted",
			opts: Options{Mode: ModePlain, Verbose: true},
			events: []progress.Event{
				{Event: progress.KindTransfer, Path: "evil\rname\n", Bytes: 1},
				{Event: progress.KindError, Path: "x", Error: "line one\nline two"},
			},
			sum:        progress.Summary{},
			wantStdout: []string{`transferred "evil\rname\n" (1 B)`, "transferred 0 files (0 B) in 0.0s, skipped 0, deleted 0, errors 0"},
			wantStderr: []string{`xfer: ERROR x: "line one\nline two"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := run(tt.opts, tt.events, tt.sum)
			if strings.Contains(stdout+stderr, "\r") {
				t.Errorf("output contains a carriage return:\n%q\n%q", stdout, stderr)
			}
			if got := lines(stdout); !slices.Equal(got, tt.wantStdout) {
				t.Errorf("stdout:\n got %q\nwant %q", got, tt.wantStdout)
			}
			if got := lines(stderr); !slices.Equal(got, tt.wantStderr) {
				t.Errorf("stderr:\n got %q\nwant %q", got, tt.wantStderr)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		events    []progress.Event
		sum       progress.Summary
		wantKinds []string
	}{
		{
			name:   "run",
			opts:   Options{Mode: ModeJSON, Verbose: true},
			events: runEvents,
			sum:    runSummary,
			wantKinds: []string{"mkdir", "transfer", "skip", "error", "notice", "delete", "symlink",
				"summary"},
		},
		{
			name:      "dry run",
			opts:      Options{Mode: ModeJSON, DryRun: true},
			events:    planEvents,
			sum:       progress.Summary{Proto: "tcp"},
			wantKinds: []string{"mkdir", "transfer", "transfer", "delete", "symlink", "error", "summary"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := run(tt.opts, tt.events, tt.sum)
			if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
			got := lines(stdout)
			if len(got) != len(tt.wantKinds) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), len(tt.wantKinds), stdout)
			}
			for i, l := range got {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("line %d %q: %v", i, l, err)
				}
				if m["event"] != tt.wantKinds[i] {
					t.Errorf("line %d: event %v, want %s", i, m["event"], tt.wantKinds[i])
				}
				if m["time"] != "2026-01-02T03:04:05.678Z" {
					t.Errorf("line %d: time %v, want RFC 3339 UTC with milliseconds", i, m["time"])
				}
				if dry, _ := m["dry_run"].(bool); tt.wantKinds[i] != "error" && dry != tt.opts.DryRun {
					t.Errorf("line %d: dry_run %v in a run with DryRun %v", i, m["dry_run"], tt.opts.DryRun)
				}
			}
			var last map[string]any
			_ = json.Unmarshal([]byte(got[len(got)-1]), &last)
			for _, k := range []string{"event", "files_transferred", "bytes_transferred", "files_skipped",
				"files_deleted", "errors", "duration_s", "proto"} {
				if _, ok := last[k]; !ok {
					t.Errorf("summary lacks %q: %s", k, got[len(got)-1])
				}
			}
			var sum progress.Summary
			_ = json.Unmarshal([]byte(got[len(got)-1]), &sum)
			want := tt.sum
			want.Event = progress.KindSummary
			want.DryRun = want.DryRun || tt.opts.DryRun
			want.Time = "2026-01-02T03:04:05.678Z"
			if fmt.Sprint(sum) != fmt.Sprint(want) {
				t.Errorf("summary = %+v, want %+v", sum, want)
			}
		})
	}
}

func TestJSONEventFields(t *testing.T) {
	stdout, _ := run(Options{Mode: ModeJSON},
		[]progress.Event{{Event: progress.KindTransfer, Path: "a&b<c>.txt", Bytes: 7, Digest: "ff"}},
		progress.Summary{})
	want := `{"event":"transfer","time":"2026-01-02T03:04:05.678Z","path":"a&b<c>.txt","bytes":7,"blake3":"ff"}`
	if got := lines(stdout)[0]; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestEventsAfterFinishDropped(t *testing.T) {
	for _, mode := range []Mode{ModeJSON, ModePlain, ModeQuiet, ModeBar} {
		t.Run(mode.String(), func(t *testing.T) {
			var out, errw bytes.Buffer
			p := New(Options{Mode: mode, Stdout: &out, Stderr: &errw})
			p.Finish(progress.Summary{Proto: "tcp"})
			before := out.String() + errw.String()
			p.Emit(progress.Event{Event: progress.KindError, Path: "late", Error: "boom"})
			p.Emit(progress.Event{Event: progress.KindProgress, BytesDone: 1, BytesTotal: 2})
			p.Finish(progress.Summary{Proto: "again"})
			if after := out.String() + errw.String(); after != before {
				t.Errorf("output changed after Finish: %q -> %q", before, after)
			}
		})
	}
}

func TestBar(t *testing.T) {
	var out, errw bytes.Buffer
	p := New(Options{Mode: ModeBar, Stdout: &out, Stderr: &errw})
	p.interval = 0
	p.bar.size = func() (int, int) { return 100, 30 }
	// Totals grow while work is done, and done catches up with the total
	// before the planner finds more.
	steps := []progress.Event{
		{Event: progress.KindProgress, Listing: true},
		{Event: progress.KindProgress, BytesDone: 100, BytesTotal: 100, FilesDone: 1, FilesTotal: 1, Listing: true},
		{Event: progress.KindProgress, BytesDone: 150, BytesTotal: 4096, FilesDone: 1, FilesTotal: 12,
			InFlight: []progress.InFlight{{Path: "big/file.bin", Size: 4096, Done: 1024}}},
		{Event: progress.KindError, Path: "c.txt", Error: "permission denied"},
		{Event: progress.KindProgress, BytesDone: 9000, BytesTotal: 4096, FilesDone: 13, FilesTotal: 12},
		{Event: progress.KindProgress, BytesDone: 9000, BytesTotal: 1 << 40, FilesDone: 13, FilesTotal: 40,
			InFlight: []progress.InFlight{{Path: "small/a", Size: 1 << 20, Files: 38}}},
	}
	for _, e := range steps {
		p.Emit(e)
	}
	shown := out.String()
	for _, want := range []string{"Files:       1 / 1+", "Files:       1 / 12, 1 in flight", "Files:       13 / 13",
		"Files:       13 / 40", "Transferred:", "ETA ", "%", "KiB", " * big/file.bin: 25% of 4.0 KiB",
		" * small/a +37 files, 1.0 MiB"} {
		if !strings.Contains(shown, want) {
			t.Errorf("display lacks %q:\n%q", want, shown)
		}
	}
	if got := errw.String(); got != "xfer: ERROR c.txt: permission denied\n" {
		t.Errorf("stderr = %q", got)
	}
	p.Finish(progress.Summary{FilesTransferred: 13, BytesTransferred: 9000, DurationS: 2, Proto: "tcp"})
	scr := newScreen(100)
	scr.write(out.String())
	want := []string{"transferred 13 files (8.8 KiB) in 2.0s (4.4 KiB/s), skipped 0, deleted 0, errors 0, proto tcp"}
	if got := scr.text(); !slices.Equal(got, want) {
		t.Errorf("screen after Finish:\n%q\nwant %q", got, want)
	}
}

// screen is a minimal terminal: it applies text, \r, \n, cursor up
// (ESC[nA), erase line (ESC[2K) and erase below (ESC[J), and wraps at its
// width as a terminal with automatic margins does.
type screen struct {
	cols     int
	rows     [][]rune
	row, col int
	wrapped  int // lines that wrapped
}

func newScreen(cols int) *screen { return &screen{cols: cols, rows: [][]rune{nil}} }

func (s *screen) line() *[]rune {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
	return &s.rows[s.row]
}

func (s *screen) write(text string) {
	r := []rune(text)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; c {
		case '\r':
			s.col = 0
		case '\n':
			s.row++
			s.col = 0
			s.line()
		case 0x1b:
			j := i + 2
			for j < len(r) && (r[j] >= '0' && r[j] <= '9' || r[j] == '?') {
				j++
			}
			arg := string(r[i+2 : j])
			switch r[j] {
			case 'A':
				n := 1
				fmt.Sscan(arg, &n)
				s.row = max(0, s.row-n)
			case 'K':
				*s.line() = nil
			case 'J':
				l := s.line()
				if len(*l) > s.col {
					*l = (*l)[:s.col]
				}
				s.rows = s.rows[:s.row+1]
			}
			i = j
		default:
			if s.col >= s.cols {
				s.wrapped++
				s.row++
				s.col = 0
			}
			l := s.line()
			for len(*l) <= s.col {
				*l = append(*l, ' ')
			}
			(*l)[s.col] = c
			s.col++
		}
	}
}

// text is the screen's non-empty lines, trailing blanks trimmed.
func (s *screen) text() []string {
	var out []string
	for _, l := range s.rows {
		if t := strings.TrimRight(string(l), " "); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// TestBarFitsEveryWidth: at any width, however long the names, a frame's
// lines are narrower than the terminal, so that nothing wraps, and after
// many redraws (and lines printed above) the screen holds the printed
// lines and exactly one frame: no junk lines.
func TestBarFitsEveryWidth(t *testing.T) {
	long := strings.Repeat("very-long-directory-name/", 8) + "日本語のファイル名.bin"
	for _, cols := range []int{10, 20, 40, 55, 80, 132} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			var out, errw bytes.Buffer
			p := New(Options{Mode: ModeBar, Stdout: &out, Stderr: &errw})
			p.interval = 0
			clock := fixedNow()
			p.now = func() time.Time { return clock }
			p.bar.rate.start = clock
			p.bar.size = func() (int, int) { return cols, 24 }
			for i := range 50 {
				clock = clock.Add(200 * time.Millisecond)
				inflight := []progress.InFlight{{Path: long, Size: 64 << 20, Done: int64(i) << 20}}
				if i%3 == 0 {
					inflight = append(inflight, progress.InFlight{Path: "short", Size: 100, Files: 7})
				}
				p.Emit(progress.Event{Event: progress.KindProgress, BytesDone: int64(i) << 20, BytesTotal: 64 << 20,
					FilesDone: int64(i), FilesTotal: 1000, InFlight: inflight})
				if i == 25 {
					p.Emit(progress.Event{Event: progress.KindNotice, Msg: "in the middle"})
				}
			}
			scr := newScreen(cols)
			scr.write(out.String())
			got := scr.text()
			if scr.wrapped > 0 {
				t.Errorf("%d lines wrapped at %d columns", scr.wrapped, cols)
			}
			for _, l := range got {
				if widthOf(l) >= cols {
					t.Errorf("line of %d cells at %d columns: %q", widthOf(l), cols, l)
				}
			}
			// The last frame: two lines and one file in flight.
			if len(got) != 3 {
				t.Errorf("screen holds %d lines, want one frame of 3:\n%s", len(got), strings.Join(got, "\n"))
			}
			if cols >= 40 && (!strings.Contains(got[0], "ETA 4s") || !strings.HasPrefix(got[1], "Files")) {
				t.Errorf("labels missing:\n%s", strings.Join(got, "\n"))
			}
			if cols >= 40 && !strings.Contains(got[2], "ファイル名.bin") {
				t.Errorf("file in flight not named by its end:\n%s", strings.Join(got, "\n"))
			}
			before := out.Len()
			p.Finish(progress.Summary{Proto: "tcp"})
			scr.write(out.String()[before:])
			// The summary is an ordinary line (it may wrap); nothing of the
			// frame is left.
			nospace := func(s string) string { return strings.ReplaceAll(s, " ", "") }
			if got := scr.text(); nospace(strings.Join(got, "")) != nospace("transferred 0 files (0 B) in 0.0s, skipped 0, deleted 0, errors 0, proto tcp") {
				t.Errorf("after Finish the screen holds:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

func widthOf(s string) int { return uniseg.StringWidth(s) }

// TestETA: the ETA is labeled, follows the measured rate to the end, and
// is unknown ("-") while the listing still adds work.
func TestETA(t *testing.T) {
	tests := []struct {
		done, total int64
		rate        float64
		listing     bool
		want        string
	}{
		{0, 100 << 20, -1, false, "ETA -"},
		{10 << 20, 100 << 20, 10 << 20, false, "ETA 9s"},
		{99 << 20, 100 << 20, 10 << 20, false, "ETA 1s"},
		{100 << 20, 100 << 20, 10 << 20, false, "ETA 0s"},
		{10 << 20, 100 << 20, 10 << 20, true, "ETA -"},
		{0, 10 << 30, 1 << 20, false, "ETA 2h50m"},
		{0, 300 << 20, 1 << 20, false, "ETA 5m00s"},
	}
	for _, tt := range tests {
		e := progress.Event{BytesDone: tt.done, BytesTotal: tt.total, Listing: tt.listing}
		l := frame(e, tt.rate, 100, 24)[0]
		if !strings.HasSuffix(strings.TrimRight(strings.SplitN(l, " [", 2)[0], " "), tt.want) {
			t.Errorf("done %d of %d at %.0f B/s (listing %v): %q, want it to end in %q", tt.done, tt.total, tt.rate, tt.listing, l, tt.want)
		}
	}
}

// TestRate: the rate is measured over the last seconds, not from zero.
func TestRate(t *testing.T) {
	start := fixedNow()
	m := rateMeter{start: start}
	if r := m.rate(start); r >= 0 {
		t.Errorf("rate before any sample = %v, want unknown", r)
	}
	// 1 MiB/s for 20 s, then 4 MiB/s for 15 s.
	var done int64
	now := start
	for i := 1; i <= 350; i++ {
		now = start.Add(time.Duration(i) * 100 * time.Millisecond)
		if i <= 200 {
			done += 1 << 20 / 10
		} else {
			done += 4 << 20 / 10
		}
		m.add(now, done)
	}
	if r := m.rate(now); math.Abs(r-4<<20)/(4<<20) > 0.05 {
		t.Errorf("rate = %.0f, want about %d", r, 4<<20)
	}
}

func TestBarThrottled(t *testing.T) {
	var out bytes.Buffer
	p := New(Options{Mode: ModeBar, Stdout: &out, Stderr: &out})
	start := time.Now()
	for i := range 1000 {
		p.Emit(progress.Event{Event: progress.KindProgress, BytesDone: int64(i), BytesTotal: 1000,
			FilesDone: int64(i), FilesTotal: 1000})
	}
	limit := int(time.Since(start)/barInterval + 1)
	if n := strings.Count(out.String(), "Files:"); n == 0 || n > limit {
		t.Errorf("1000 quick progress events drew %d frames, want a few:\n%q", n, out.String())
	}
}

func TestAutoMode(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tests := []struct {
		name string
		opts Options
		want Mode
	}{
		{"buffer", Options{Stdout: &bytes.Buffer{}}, ModePlain},
		{"regular file", Options{Stdout: f}, ModePlain},
		{"explicit bar", Options{Mode: ModeBar, Stdout: &bytes.Buffer{}}, ModeBar},
		{"explicit json", Options{Mode: ModeJSON, Stdout: f}, ModeJSON},
		{"unknown", Options{Mode: Mode(42), Stdout: &bytes.Buffer{}}, ModePlain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.opts).Mode(); got != tt.want {
				t.Errorf("Mode() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{512, "512 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{1<<20 - 1, "1.0 MiB"},
		{3 << 29, "1.5 GiB"},
		{1 << 40, "1.0 TiB"},
		{1<<63 - 1, "8.0 EiB"},
		{-2048, "-2.0 KiB"},
		{-1 << 63, "-8.0 EiB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestConcurrentEmit(t *testing.T) {
	const workers, perWorker = 8, 100
	for _, mode := range []Mode{ModeJSON, ModePlain, ModeQuiet, ModeBar} {
		t.Run(mode.String(), func(t *testing.T) {
			// Plain buffers: the Printer must serialise its own writes, and
			// the race detector reports it if it does not.
			var out, errw bytes.Buffer
			p := New(Options{Mode: mode, Stdout: &out, Stderr: &errw, Verbose: true})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						n := int64(w*perWorker + i)
						p.Emit(progress.Event{Event: progress.KindTransfer, Path: fmt.Sprintf("f%d", n), Bytes: n})
						p.Emit(progress.Event{Event: progress.KindProgress, BytesDone: n, BytesTotal: n * 2,
							FilesDone: n, FilesTotal: n + 10})
						if i%10 == 0 {
							p.Emit(progress.Event{Event: progress.KindError, Path: "e", Error: "x"})
						}
					}
				})
			}
			wg.Wait()
			p.Finish(progress.Summary{FilesTransferred: workers * perWorker, Proto: "tcp"})

			stdout, stderr := out.String(), errw.String()
			errLines := workers * perWorker / 10
			switch mode {
			case ModeJSON:
				ls := lines(stdout)
				if len(ls) != workers*perWorker+errLines+1 {
					t.Fatalf("got %d JSON lines", len(ls))
				}
				for _, l := range ls {
					if !json.Valid([]byte(l)) {
						t.Fatalf("invalid JSON line %q", l)
					}
				}
				if !strings.HasPrefix(ls[len(ls)-1], `{"event":"summary"`) {
					t.Errorf("last line is not the summary: %s", ls[len(ls)-1])
				}
			case ModeQuiet:
				if stdout != "" {
					t.Errorf("quiet stdout = %q", stdout)
				}
				if n := len(lines(stderr)); n != errLines {
					t.Errorf("quiet printed %d error lines, want %d", n, errLines)
				}
			default:
				if n := strings.Count(stdout, "transferred f"); n != workers*perWorker {
					t.Errorf("%d transfer lines, want %d", n, workers*perWorker)
				}
				if n := strings.Count(stderr, "xfer: ERROR e: x\n"); n != errLines {
					t.Errorf("%d error lines, want %d", n, errLines)
				}
				if !strings.HasSuffix(stdout, "errors 0, proto tcp\n") {
					t.Errorf("stdout does not end with the summary: %q", stdout[max(0, len(stdout)-200):])
				}
			}
		})
	}
}

// TestStats: --stats prints the counters every interval (a line in the
// human modes, a stats event in JSON, nothing when quiet); -P off a
// terminal prints them every ProgressInterval.
func TestStats(t *testing.T) {
	for _, tc := range []struct {
		name      string
		o         Options
		want      int    // stats outputs over 2s of progress every 200ms
		wantFirst string // the first of them
	}{
		{"plain 1s", Options{Mode: ModePlain, Stats: time.Second}, 2,
			"stats: 5.0 MiB of 20.0 MiB (25%), 5 of 20 files, 5.0 MiB/s, elapsed 1s, ETA 3s"},
		// Progress comes every 200ms: the first at or after 500ms is at 600ms.
		{"json 500ms", Options{Mode: ModeJSON, Stats: 500 * time.Millisecond}, 3,
			`{"event":"stats","time":"2026-01-02T03:04:06.278Z","bytes_done":3145728,"bytes_total":20971520,"files_done":3,"files_total":20,"elapsed_s":0.6,"rate_bps":5242880}`},
		{"quiet", Options{Mode: ModeQuiet, Stats: 200 * time.Millisecond}, 0, ""},
		{"none", Options{Mode: ModePlain}, 0, ""},
		{"progress off a terminal", Options{Mode: ModePlain, Progress: true}, 3, ""},
		{"progress with a shorter --stats", Options{Mode: ModePlain, Progress: true, Stats: 200 * time.Millisecond}, 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			o := tc.o
			o.Stdout, o.Stderr = &out, &errw
			p := New(o)
			clock := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
			p.now = func() time.Time { return clock }
			p.start, p.lastStats = clock, clock
			for i := 1; i <= 10; i++ {
				clock = clock.Add(200 * time.Millisecond)
				p.Emit(progress.Event{Event: progress.KindProgress, BytesDone: int64(i) << 20, BytesTotal: 20 << 20,
					FilesDone: int64(i), FilesTotal: 20})
			}
			var got []string
			for _, l := range lines(out.String()) {
				if strings.HasPrefix(l, "stats: ") || strings.Contains(l, `"event":"stats"`) {
					got = append(got, l)
				}
			}
			if len(got) != tc.want {
				t.Fatalf("%d stats outputs, want %d:\n%s", len(got), tc.want, out.String())
			}
			if tc.wantFirst != "" && got[0] != tc.wantFirst {
				t.Errorf("first stats output\n got %s\nwant %s", got[0], tc.wantFirst)
			}
		})
	}
}
