package transfer

// `xfer bench` over a session: requests bench.* and data messages
// mBenchFirst..mBenchLast. The benchmark runs on the session's own lanes,
// through the same Send/SendFile calls the copy engine makes, so it measures
// the negotiated transport as transfers use it, not a separate path.
//
// Control requests carry their arguments as JSON in Req.Path (benchArgs)
// and their results as JSON in Resp.Digest (benchReply), as cas.* does:
//
//	bench.start {mode, path, size}  -> {run}: opens a run; the server notes
//	                                   its CPU time and the time
//	bench.stop  {run, sent, msgs}   -> {bytes, msgs, cpu_s, elapsed_s}: waits
//	                                   until the bytes and messages the client
//	                                   sent on each stream have arrived (they
//	                                   travel on the lanes, the request on the
//	                                   control connection), then closes the run
//
// Data messages (header byte 0, then varints):
//
//	mBenchData (10) uvarint run; payload: bytes the server counts per stream
//	                and discards (mode mem) or pwrites into an unnamed
//	                temporary file beneath the export (mode disk)
//	mBenchPing (11) uvarint run, uvarint seq; payload (at most 64 KiB)
//	mBenchPong (12) uvarint run, uvarint seq; the ping's payload echoed
//
// A session has at most one open run on its server side. Data for a run
// that is not open is a protocol error, like any unknown message.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/exitcode"
)

// Request operations and data message kinds of the benchmark.
const (
	opBenchStart = "bench.start"
	opBenchStop  = "bench.stop"

	mBenchData byte = 10 // bulk bytes, counted (and written in mode disk)
	mBenchPing byte = 11 // a small message the peer echoes
	mBenchPong byte = 12 // the echo
)

const (
	// BenchMaxSize bounds a bulk message (the largest chunk a copy sends).
	BenchMaxSize = wire.MaxChunkSize
	// BenchMaxPing bounds a ping's payload.
	BenchMaxPing = 64 << 10
	// benchDiskSpan is how much of the temporary file mode disk fills
	// before it wraps around and rewrites (shared by the streams), so a
	// long run never fills the file system.
	benchDiskSpan = 1 << 30
)

// benchArgs are the arguments of a bench.* request, JSON in Req.Path.
type benchArgs struct {
	Mode string  `json:"mode,omitempty"` // start: mem (default) or disk
	Path string  `json:"path,omitempty"` // start, disk: directory for the temporary file
	Size int64   `json:"size,omitempty"` // start, disk: message size (aligns the writes)
	Run  uint64  `json:"run,omitempty"`  // stop
	Sent []int64 `json:"sent,omitempty"` // stop: payload bytes sent per stream
	Msgs []int64 `json:"msgs,omitempty"` // stop: messages sent per stream
}

// benchReply is the result of a bench.* request, JSON in Resp.Digest.
type benchReply struct {
	Run      uint64  `json:"run,omitempty"`
	Bytes    []int64 `json:"bytes,omitempty"` // stop: payload bytes received per stream
	Msgs     []int64 `json:"msgs,omitempty"`  // stop: messages received per stream
	CPU      float64 `json:"cpu_s"`           // stop: the server's CPU seconds (user+system) during the run
	Elapsed  float64 `json:"elapsed_s"`       // stop: seconds from start to the last byte
	WriteErr string  `json:"write_err,omitempty"`
}

// benchState is a session's benchmark bookkeeping: the run its server side
// has open, and on its client side the lanes waiting for pongs.
type benchState struct {
	mu      sync.Mutex
	run     *benchRun
	nextRun uint64
	pongs   []chan uint64 // client: per lane, the seq of each pong
}

// benchStates maps each *Session that has used the benchmark to its
// *benchState; an entry goes when its session ends.
var benchStates sync.Map

// bench returns the session's benchmark state, creating it on first use.
func (s *Session) bench() *benchState {
	if v, ok := benchStates.Load(s); ok {
		return v.(*benchState)
	}
	v, loaded := benchStates.LoadOrStore(s, &benchState{})
	st := v.(*benchState)
	if !loaded {
		go func() {
			<-s.done
			st.mu.Lock()
			if st.run != nil {
				st.run.close()
				st.run = nil
			}
			st.mu.Unlock()
			benchStates.Delete(s)
		}()
	}
	return st
}

// benchRun is a run open on the server side.
type benchRun struct {
	id     uint64
	file   *os.File // mode disk: unnamed temporary file
	span   int64    // mode disk: bytes of the file each stream cycles through
	bytes  []atomic.Int64
	msgs   []atomic.Int64
	pos    []int64 // mode disk: next offset in each stream's span (its lane's reader only)
	last   atomic.Int64
	start  time.Time
	cpu0   time.Duration
	wait   atomic.Bool   // bench.stop is waiting: notify after each message
	notify chan struct{} // capacity 1

	emu sync.Mutex
	err error // first write failure (mode disk)

	closeOnce sync.Once
}

// close releases the run's file; a write racing with it fails harmlessly.
func (r *benchRun) close() {
	r.closeOnce.Do(func() {
		if r.file != nil {
			r.file.Close()
		}
	})
}

// receive accounts for one message of n payload bytes p on stream i.
func (r *benchRun) receive(i int, p []byte, write bool) {
	if write && r.file != nil && len(p) > 0 {
		if r.pos[i]+int64(len(p)) > r.span {
			r.pos[i] = 0
		}
		if _, err := r.file.WriteAt(p, int64(i)*r.span+r.pos[i]); err != nil {
			r.emu.Lock()
			if r.err == nil {
				r.err = err
			}
			r.emu.Unlock()
		}
		r.pos[i] += int64(len(p))
	}
	r.bytes[i].Add(int64(len(p)))
	r.msgs[i].Add(1)
	r.last.Store(int64(time.Since(r.start)))
	if r.wait.Load() {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// lookup returns the open run id, or nil.
func (st *benchState) lookup(id uint64) *benchRun {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.run != nil && st.run.id == id {
		return st.run
	}
	return nil
}

// cpuTime is this process's CPU time so far, user plus system, all threads.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serveBench answers the peer's bench.* requests.
func (h *handler) serveBench(s *Session, r *wire.Req) {
	var a benchArgs
	if r.Path != "" {
		if err := json.Unmarshal([]byte(r.Path), &a); err != nil {
			s.reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("%s: bad arguments: %v", r.Op, err), Kind: wire.KindUsage})
			return
		}
	}
	switch r.Op {
	case opBenchStart:
		id, err := h.benchStart(s, a)
		if err != nil {
			s.reply(errResp(r.ID, err))
			return
		}
		s.reply(benchResp(r.ID, &benchReply{Run: id}))
	case opBenchStop:
		ctx := s.track(r.ID)
		go func() {
			defer s.untrack(r.ID)
			res, err := s.bench().stop(ctx, s, a)
			if err != nil {
				s.reply(errResp(r.ID, err))
				return
			}
			s.reply(benchResp(r.ID, res))
		}()
	default:
		s.reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

func benchResp(id uint64, res *benchReply) *wire.Resp {
	b, _ := json.Marshal(res)
	return &wire.Resp{ID: id, Digest: string(b)}
}

// benchStart opens a run: in mode disk with an unnamed temporary file in
// the directory a.Path beneath the served tree.
func (h *handler) benchStart(s *Session, a benchArgs) (uint64, error) {
	n := len(s.lanes)
	run := &benchRun{
		bytes:  make([]atomic.Int64, n),
		msgs:   make([]atomic.Int64, n),
		notify: make(chan struct{}, 1),
	}
	switch a.Mode {
	case "", "mem":
	case "disk":
		if a.Size < 1 || a.Size > BenchMaxSize {
			return 0, exitcode.Usagef("bench: message size %d out of range (1 to %d)", a.Size, BenchMaxSize)
		}
		f, err := h.benchFile(a.Path)
		if err != nil {
			return 0, err
		}
		run.file = f
		run.span = max(a.Size, benchDiskSpan/int64(max(n, 1))/a.Size*a.Size)
		run.pos = make([]int64, n)
	default:
		return 0, exitcode.Usagef("bench: unknown mode %q (want mem or disk)", a.Mode)
	}
	st := s.bench()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.run != nil {
		run.close()
		return 0, exitcode.Usagef("bench: run %d is still open in this session", st.run.id)
	}
	st.nextRun++
	run.id = st.nextRun
	run.cpu0, run.start = cpuTime(), time.Now()
	st.run = run
	return run.id, nil
}

// benchFile creates the unnamed temporary file of mode disk in dir beneath
// the served tree: O_TMPFILE, or where the file system lacks it a named
// file that is unlinked at once. Either way it disappears when closed.
func (h *handler) benchFile(dir string) (*os.File, error) {
	p, err := h.resolve(dir)
	if err != nil {
		return nil, err
	}
	if rc := h.receiverIfBound(); rc == nil || rc.readOnly {
		return nil, fmt.Errorf("bench --mode disk in %s: %w", dir, errReadOnly)
	}
	f, err := h.root.OpenFile(p, unix.O_TMPFILE|os.O_RDWR, 0o600)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.EISDIR) && !errors.Is(err, syscall.EINVAL) {
		return nil, fmt.Errorf("bench --mode disk: temporary file in %s: %w", dir, err)
	}
	name := path.Join(p, fmt.Sprintf(".xfer-bench-%d-%d.tmp", os.Getpid(), time.Now().UnixNano()))
	f, err = h.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bench --mode disk: temporary file in %s: %w", dir, err)
	}
	if err := h.root.Remove(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench --mode disk: unlink %s: %w", name, err)
	}
	return f, nil
}

// stop waits until everything the client says it sent has arrived, then
// closes the run and reports what arrived and what it cost.
func (st *benchState) stop(ctx context.Context, s *Session, a benchArgs) (*benchReply, error) {
	run := st.lookup(a.Run)
	if run == nil {
		return nil, exitcode.Usagef("bench: no open run %d in this session", a.Run)
	}
	if len(a.Sent) > len(run.bytes) || len(a.Msgs) > len(run.msgs) {
		return nil, exitcode.Usagef("bench: counts for %d streams, the session has %d", max(len(a.Sent), len(a.Msgs)), len(run.bytes))
	}
	run.wait.Store(true)
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	for {
		missing := ""
		for i, want := range a.Sent {
			if got := run.bytes[i].Load(); got < want {
				missing = fmt.Sprintf("stream %d: %d of %d bytes arrived", i, got, want)
				break
			}
		}
		for i, want := range a.Msgs {
			if got := run.msgs[i].Load(); missing == "" && got < want {
				missing = fmt.Sprintf("stream %d: %d of %d messages arrived", i, got, want)
			}
		}
		if missing == "" {
			break
		}
		select {
		case <-run.notify:
			if !idle.Stop() {
				<-idle.C
			}
			idle.Reset(s.idle)
		case <-idle.C:
			return nil, exitcode.Peerf("bench: nothing arrived for %s (%s)", s.idle, missing)
		case <-s.done:
			return nil, s.endErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res := &benchReply{
		Run:     run.id,
		Bytes:   make([]int64, len(run.bytes)),
		Msgs:    make([]int64, len(run.msgs)),
		CPU:     (cpuTime() - run.cpu0).Seconds(),
		Elapsed: time.Duration(run.last.Load()).Seconds(),
	}
	for i := range run.bytes {
		res.Bytes[i], res.Msgs[i] = run.bytes[i].Load(), run.msgs[i].Load()
	}
	run.emu.Lock()
	if run.err != nil {
		res.WriteErr = run.err.Error()
	}
	run.emu.Unlock()
	st.mu.Lock()
	if st.run == run {
		st.run = nil
	}
	st.mu.Unlock()
	run.close()
	if res.WriteErr != "" {
		return nil, fmt.Errorf("bench --mode disk: writing the temporary file: %s", res.WriteErr)
	}
	return res, nil
}

// handleBench handles the benchmark's data messages on a lane's reader.
func (l *lane) handleBench(hdr []byte, n int, buf *[]byte) error {
	d := &wire.Dec{Buf: hdr[1:]}
	id := d.Uvar()
	var seq uint64
	if hdr[0] != mBenchData {
		seq = d.Uvar()
	}
	if d.Err != nil {
		return fmt.Errorf("bad bench message header: %w", d.Err)
	}
	switch hdr[0] {
	case mBenchData:
		run := l.s.bench().lookup(id)
		if run == nil {
			return fmt.Errorf("bench data for run %d, which is not open", id)
		}
		p, err := l.payload(n, BenchMaxSize, buf)
		if err != nil {
			return err
		}
		run.receive(l.idx, p, true)
		return nil
	case mBenchPing:
		run := l.s.bench().lookup(id)
		if run == nil {
			return fmt.Errorf("bench ping for run %d, which is not open", id)
		}
		p, err := l.payload(n, BenchMaxPing, buf)
		if err != nil {
			return err
		}
		run.receive(l.idx, p, false)
		return l.send(benchHeader(mBenchPong, id, seq), p)
	case mBenchPong:
		st := l.s.bench()
		st.mu.Lock()
		var ch chan uint64
		if l.idx < len(st.pongs) {
			ch = st.pongs[l.idx]
		}
		st.mu.Unlock()
		if ch == nil {
			return fmt.Errorf("bench pong %d nobody waits for", seq)
		}
		if _, err := l.payload(n, BenchMaxPing, buf); err != nil {
			return err
		}
		select {
		case ch <- seq:
			return nil
		default:
			return fmt.Errorf("bench pong %d that was not asked for", seq)
		}
	}
	return fmt.Errorf("unknown data message kind %d", hdr[0])
}

// benchHeader encodes a benchmark message header.
func benchHeader(kind byte, run, seq uint64) []byte {
	e := wire.Enc{Buf: make([]byte, 0, 24)}
	e.U8(kind)
	e.Uvar(run)
	if kind != mBenchData {
		e.Uvar(seq)
	}
	return e.Buf
}
