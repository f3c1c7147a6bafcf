package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfer-io/xfer/progress"
)

// run feeds events to a Printer writing to buffers, finishes it with sum
// and returns what it wrote to stdout and stderr.
func run(o Options, events []progress.Event, sum progress.Summary) (stdout, stderr string) {
	var out, errw bytes.Buffer
	o.Stdout, o.Stderr = &out, &errw
	p := New(o)
	p.interval = 0
	for _, e := range events {
		p.Emit(e)
	}
	p.Finish(sum)
	return out.String(), errw.String()
}

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
		{Event: progress.KindMkdir, Action: "mkdir", Path: "dir"},
		{Event: progress.KindTransfer, Action: "create", Path: "dir/a.txt", Bytes: 1229},
		{Event: progress.KindTransfer, Action: "update", Path: "b.txt", Bytes: 512},
		{Event: progress.KindDelete, Action: "delete", Path: "old.txt"},
		{Event: progress.KindSymlink, Action: "symlink", Path: "link"},
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
			name:       "quiet dry run prints the plan",
			opts:       Options{Mode: ModeQuiet, DryRun: true},
			events:     planEvents,
			sum:        planSummary,
			wantStdout: planLines,
			wantStderr: []string{"xfer: ERROR c.txt: permission denied"},
		},
		{
			name: "summary details",
			opts: Options{Mode: ModePlain},
			sum: progress.Summary{FilesTransferred: 1, BytesTransferred: 512, DurationS: 125,
				Proto: "rdma", ProtoReason: "peer supports it",
				Agents: map[string]progress.AgentStats{
					"node2": {Files: 2, Bytes: 3 << 30, Lost: true},
					"node1": {Files: 1, Bytes: 1 << 20},
				}},
			wantStdout: []string{
				"transferred 1 file (512 B) in 2m5s (4 B/s), skipped 0, deleted 0, errors 0, proto rdma (peer supports it)",
				"agent node1: 1 file (1.0 MiB)",
				"agent node2: 2 files (3.0 GiB), lost",
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
			if got := lines(stdout); !equal(got, tt.wantStdout) {
				t.Errorf("stdout:\n got %q\nwant %q", got, tt.wantStdout)
			}
			if got := lines(stderr); !equal(got, tt.wantStderr) {
				t.Errorf("stderr:\n got %q\nwant %q", got, tt.wantStderr)
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
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
	want := `{"event":"transfer","path":"a&b<c>.txt","bytes":7,"blake3":"ff"}`
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
	// Totals grow while work is done, and done catches up with the total
	// before the planner finds more.
	steps := []progress.Event{
		{Event: progress.KindProgress},
		{Event: progress.KindProgress, BytesDone: 100, BytesTotal: 100, FilesDone: 1, FilesTotal: 1},
		{Event: progress.KindProgress, BytesDone: 150, BytesTotal: 4096, FilesDone: 1, FilesTotal: 12},
		{Event: progress.KindError, Path: "c.txt", Error: "permission denied"},
		{Event: progress.KindProgress, BytesDone: 9000, BytesTotal: 4096, FilesDone: 13, FilesTotal: 12},
		{Event: progress.KindProgress, BytesDone: 9000, BytesTotal: 1 << 40, FilesDone: 13, FilesTotal: 40},
	}
	for _, e := range steps {
		p.Emit(e)
	}
	shown := out.String()
	for _, want := range []string{"files 1/1", "files 1/12", "files 13/13", "files 13/40", "%", "KiB"} {
		if !strings.Contains(shown, want) {
			t.Errorf("bar output lacks %q:\n%q", want, shown)
		}
	}
	if got := errw.String(); got != "xfer: ERROR c.txt: permission denied\n" {
		t.Errorf("stderr = %q", got)
	}
	// The bar is redrawn after the error line.
	if !strings.Contains(shown[strings.LastIndex(shown, "\r"):], "files 13/40") {
		t.Errorf("bar not redrawn last: %q", shown)
	}

	p.Finish(progress.Summary{FilesTransferred: 13, BytesTransferred: 9000, DurationS: 2, Proto: "tcp"})
	all := out.String()
	// After the last carriage return only blanks (the cleared bar) and the
	// summary remain.
	tail := all[strings.LastIndex(all, "\r")+1:]
	want := "transferred 13 files (8.8 KiB) in 2.0s (4.4 KiB/s), skipped 0, deleted 0, errors 0, proto tcp\n"
	if tail != want {
		t.Errorf("after the bar: %q, want %q", tail, want)
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
	// A redraw renders the description at most twice (new description,
	// new byte count).
	limit := 2 * int(time.Since(start)/barInterval+1)
	if n := strings.Count(out.String(), "files "); n == 0 || n > limit {
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
			var out, errw syncBuffer
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

// syncBuffer is a bytes.Buffer safe for concurrent use, so that the race
// detector checks the Printer and not the test's writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
