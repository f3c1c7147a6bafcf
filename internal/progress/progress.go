// Package progress defines the stream of events a transfer produces: the one
// source for progress bars, JSON output, metrics and per-agent accounting.
// Events are plain JSON-serialisable values so that a remote engine (a
// third-party transfer run by a server) can relay them to the client verbatim.
package progress

import (
	"cmp"
	"sync"
	"time"
)

// Event kinds.
const (
	KindProgress = "progress" // periodic cumulative counters (not printed in --json)
	KindTransfer = "transfer" // a file was transferred and verified
	KindSkip     = "skip"     // a file was already up to date
	KindDelete   = "delete"   // an entry was deleted at the destination
	KindMkdir    = "mkdir"    // a directory was created
	KindSymlink  = "symlink"  // a symlink was created or updated
	KindXattrs   = "xattrs"   // an entry's extended attributes or ACLs were made to match the source's (-X, -A)
	KindPlan     = "plan"     // no longer emitted: a dry run emits the events of the real run, with Action and DryRun set
	KindError    = "error"    // something failed; the run continues where it can
	KindNotice   = "notice"   // something a user should know (fallbacks, retries, recovered failures)
	KindStopped  = "stopped"  // the run ended before its work was done (a signal, --max-duration); Msg says what resumes it
	KindSummary  = "summary"  // the last event of a run
	KindRmdir    = "rmdir"    // an empty directory was removed (delete --rmdirs, move --delete-empty-src-dirs)
	// KindSourceRemoved: move removed a source entry, once its copy at
	// the destination was verified (or found the same).
	KindSourceRemoved = "source_removed"
	KindStats         = "stats" // --stats INTERVAL: the counters so far, with ElapsedS and the rate
)

// A dry run emits the events a real run would (transfer, delete, mkdir,
// symlink), each with DryRun set and Action saying what it stands for.

// Reasons a run stopped early (Summary.Stopped).
const (
	StoppedInterrupted = "interrupted"  // SIGINT or SIGTERM
	StoppedMaxDuration = "max-duration" // --max-duration reached
	StoppedMaxTransfer = "max-transfer" // --max-transfer reached
)

// TimeFormat is how events and summaries carry their time: RFC 3339 in
// UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Stamp returns t formatted as TimeFormat.
func Stamp(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Event is one line of `--json` output.
type Event struct {
	Event string `json:"event"`
	// Time is when the event was printed (TimeFormat); set by the
	// output, not by the engine.
	Time   string `json:"time,omitempty"`
	Path   string `json:"path,omitempty"`
	Action string `json:"action,omitempty"` // set in a dry run only: create|update|link|mkdir|symlink|delete|rmdir|remove-source|purge
	Bytes  int64  `json:"bytes,omitempty"`
	Digest string `json:"blake3,omitempty"`
	Error  string `json:"error,omitempty"`
	Msg    string `json:"msg,omitempty"`
	// DryRun marks what a dry run would do; nothing was done.
	DryRun bool `json:"dry_run,omitempty"`
	// Retry marks a notice that a chunk failed verification at the
	// destination and is sent again.
	Retry bool `json:"retry,omitempty"`

	// Cumulative counters, set on progress events.
	BytesDone  int64 `json:"bytes_done,omitempty"`
	BytesTotal int64 `json:"bytes_total,omitempty"`
	FilesDone  int64 `json:"files_done,omitempty"`
	FilesTotal int64 `json:"files_total,omitempty"`
	// Listing is set on progress events while the source is still being
	// listed: the totals are not final yet.
	Listing bool `json:"listing,omitempty"`
	// InFlight lists (some of) the files being sent, on progress events.
	InFlight []InFlight `json:"in_flight,omitempty"`
	// ElapsedS (seconds since the run started) and RateBps (bytes done
	// per second over that time) are set on stats events.
	ElapsedS float64 `json:"elapsed_s,omitempty"`
	RateBps  float64 `json:"rate_bps,omitempty"`
}

// InFlight is a file (or a batch of small files) on its way.
type InFlight struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`            // bytes of the file, or of the batch
	Done  int64  `json:"done,omitempty"`  // bytes of it verified so far
	Files int    `json:"files,omitempty"` // a batch: how many files it holds (Path is the first)
}

// MaxInFlight bounds the files a progress event lists.
const MaxInFlight = 8

// AgentStats is what one agent of a cluster remote carried.
type AgentStats struct {
	Bytes int64 `json:"bytes"`
	Files int64 `json:"files"`
	Lost  bool  `json:"lost,omitempty"`
	// DirsRead counts the source directories the agent read (listed)
	// for the run: its share of the walk.
	DirsRead int64 `json:"dirs_read"`
}

// Summary is the final event of a run.
type Summary struct {
	Event            string `json:"event"`
	Time             string `json:"time,omitempty"` // when it was printed (TimeFormat)
	FilesTransferred int64  `json:"files_transferred"`
	BytesTransferred int64  `json:"bytes_transferred"`
	BytesSent        int64  `json:"bytes_sent"` // payload that crossed to the destination (less than bytes_transferred when chunks were resumed)
	FilesSkipped     int64  `json:"files_skipped"`
	FilesDeleted     int64  `json:"files_deleted"`
	DirsCreated      int64  `json:"dirs_created"`
	// XattrsUpdated counts entries whose extended attributes or ACLs
	// were made to match the source's (-X, -A).
	XattrsUpdated int64 `json:"xattrs_updated,omitempty"`
	// DirsRemoved counts empty directories removed (KindRmdir);
	// SourceRemoved the source entries a move removed
	// (KindSourceRemoved).
	DirsRemoved   int64 `json:"dirs_removed,omitempty"`
	SourceRemoved int64 `json:"source_removed,omitempty"`
	// DirsRead counts the source directories the run's walk read.
	DirsRead    int64   `json:"dirs_read,omitempty"`
	Errors      int64   `json:"errors"`
	DurationS   float64 `json:"duration_s"`
	Proto       string  `json:"proto"`
	ProtoReason string  `json:"proto_reason,omitempty"`
	// ProtoChoice, for a session to a served peer, is how the transport
	// was chosen, with the probe's figures.
	ProtoChoice *ProtoChoice `json:"proto_choice,omitempty"`
	// SSHData, for a run with an ssh:// side, says how the data crossed:
	// "direct" (TCP to the far side's one-run listener) or "inline"
	// (inside ssh).
	SSHData      string                `json:"ssh_data,omitempty"`
	DryRun       bool                  `json:"dry_run,omitempty"`
	PlannedBytes int64                 `json:"planned_bytes,omitempty"`
	Agents       map[string]AgentStats `json:"agents,omitempty"`
	// ExitCode is the exit status of the run this summary ends (set by
	// the command that prints it: 0 ok, 1 some files failed, 2 usage or
	// configuration, 3 the peer, 4 stopped at --max-duration, 8 stopped
	// at --max-transfer, 130/143
	// interrupted by a signal).
	ExitCode int `json:"exit_code"`
	// Stopped says why a run ended before its work was done
	// (StoppedInterrupted, StoppedMaxDuration, StoppedMaxTransfer);
	// rerunning it resumes.
	Stopped string `json:"stopped,omitempty"`
}

// Sink receives events. Implementations must be safe for concurrent use.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard is a Sink that drops every event.
var Discard Sink = SinkFunc(func(Event) {})

// Tally accumulates a Summary from events and keeps the live counters that
// periodic progress events report. It is safe for concurrent use.
type Tally struct {
	mu    sync.Mutex
	sum   Summary
	start time.Time

	bytesDone, bytesTotal, filesDone, filesTotal int64
}

// NewTally starts a tally at the current time.
func NewTally() *Tally {
	return &Tally{start: time.Now(), sum: Summary{Event: KindSummary}}
}

// AddPlanned grows the totals as the planner discovers work.
func (t *Tally) AddPlanned(files, bytes int64) {
	t.mu.Lock()
	t.filesTotal += files
	t.bytesTotal += bytes
	t.sum.PlannedBytes += bytes
	t.mu.Unlock()
}

// AddBytes records payload bytes verified at the destination.
func (t *Tally) AddBytes(n int64) {
	t.mu.Lock()
	t.bytesDone += n
	t.mu.Unlock()
}

// AddSent records payload bytes that actually crossed to the destination.
func (t *Tally) AddSent(n int64) {
	t.mu.Lock()
	t.sum.BytesSent += n
	t.mu.Unlock()
}

// Record updates the summary from a finished-work event.
func (t *Tally) Record(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Event {
	case KindTransfer:
		t.sum.FilesTransferred++
		t.sum.BytesTransferred += e.Bytes
		t.filesDone++
	case KindSkip:
		t.sum.FilesSkipped++
	case KindDelete:
		t.sum.FilesDeleted++
	case KindMkdir:
		t.sum.DirsCreated++
	case KindRmdir:
		t.sum.DirsRemoved++
	case KindSourceRemoved:
		t.sum.SourceRemoved++
	case KindXattrs:
		t.sum.XattrsUpdated++
	case KindError:
		t.sum.Errors++
		t.filesDone++
	}
}

// Progress returns a progress event with the current counters.
func (t *Tally) Progress() Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Event{Event: KindProgress, BytesDone: t.bytesDone, BytesTotal: t.bytesTotal,
		FilesDone: t.filesDone, FilesTotal: t.filesTotal}
}

// Summary returns the summary so far, with the duration since NewTally.
func (t *Tally) Summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sum
	s.DurationS = time.Since(t.start).Seconds()
	if s.Agents != nil {
		s.Agents = make(map[string]AgentStats, len(t.sum.Agents))
		for k, v := range t.sum.Agents {
			s.Agents[k] = v
		}
	}
	return s
}

// Merge folds a summary produced elsewhere (a remote engine) into this one.
func (t *Tally) Merge(s Summary) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum.FilesTransferred += s.FilesTransferred
	t.sum.BytesTransferred += s.BytesTransferred
	t.sum.BytesSent += s.BytesSent
	t.sum.FilesSkipped += s.FilesSkipped
	t.sum.FilesDeleted += s.FilesDeleted
	t.sum.DirsCreated += s.DirsCreated
	t.sum.DirsRead += s.DirsRead
	t.sum.XattrsUpdated += s.XattrsUpdated
	t.sum.DirsRemoved += s.DirsRemoved
	t.sum.SourceRemoved += s.SourceRemoved
	t.sum.Errors += s.Errors
	t.sum.PlannedBytes += s.PlannedBytes
	if s.Proto != "" {
		t.sum.Proto, t.sum.ProtoReason = s.Proto, s.ProtoReason
	}
	if s.ProtoChoice != nil {
		t.sum.ProtoChoice = s.ProtoChoice
	}
	t.sum.SSHData = cmp.Or(s.SSHData, t.sum.SSHData)
	t.sum.DryRun = t.sum.DryRun || s.DryRun
	for k, v := range s.Agents {
		if t.sum.Agents == nil {
			t.sum.Agents = map[string]AgentStats{}
		}
		a := t.sum.Agents[k]
		a.Bytes += v.Bytes
		a.Files += v.Files
		a.DirsRead += v.DirsRead
		a.Lost = a.Lost || v.Lost
		t.sum.Agents[k] = a
	}
}

// SetProto records the transport used and why it was chosen.
func (t *Tally) SetProto(proto, reason string) {
	t.mu.Lock()
	t.sum.Proto, t.sum.ProtoReason = proto, reason
	t.mu.Unlock()
}

// SetProtoChoice records how the transport was chosen (nil: not said).
func (t *Tally) SetProtoChoice(c *ProtoChoice) {
	t.mu.Lock()
	t.sum.ProtoChoice = c
	t.mu.Unlock()
}

// How a transport was chosen (ProtoChoice.By).
const (
	ChosenMeasured   = "measured"           // the fastest of a probe at session start
	ChosenCached     = "cached"             // a probe's result kept for this peer
	ChosenOnly       = "only one candidate" // both ends share one transport
	ChosenForced     = "forced"             // --proto named it
	ChosenFallback   = "fallback"           // probes failed: the preference order
	ChosenPreference = "preference"         // not measured (--bwlimit): the preference order
)

// ProtoChoice says how `--proto` ended on the transport of a session.
type ProtoChoice struct {
	Proto string `json:"proto"`
	By    string `json:"by"` // Chosen*
	// Rates are the probe's figures, one per candidate in preference
	// order (for "cached": the figures of the probe that was cached).
	Rates []ProtoRate `json:"rates,omitempty"`
	// MeasuredAt is when the figures were measured (RFC 3339).
	MeasuredAt string `json:"measured_at,omitempty"`
}

// ProtoRate is what a probe measured of one transport.
type ProtoRate struct {
	Proto string  `json:"proto"`
	GBs   float64 `json:"gb_s,omitempty"` // payload, 10^9 bytes/s
	Bytes int64   `json:"bytes,omitempty"`
	Error string  `json:"error,omitempty"`
}

// SetSSHData records how the data of an ssh:// side crossed.
func (t *Tally) SetSSHData(path string) {
	t.mu.Lock()
	t.sum.SSHData = path
	t.mu.Unlock()
}

// SetDryRun marks the summary as describing a dry run.
func (t *Tally) SetDryRun() {
	t.mu.Lock()
	t.sum.DryRun = true
	t.mu.Unlock()
}
