// Package bench is `xfer bench` over a session: Run measures a session's
// transport against its peer, and Serve answers such runs.
package bench

// `xfer bench` over a session: requests bench.* and data messages
// mBenchFirst..mBenchLast. The benchmark runs on the session's own lanes,
// through the same Send/SendFile calls the copy engine makes, so it measures
// the negotiated transport as transfers use it, not a separate path.
//
// Control requests carry their arguments in Req.Bench (wire.BenchArgs)
// and their results in Resp.Bench (wire.BenchReply), as cas.* does:
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
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/exitcode"
)

const (
	// MaxSize bounds a bulk message (the largest chunk a copy sends).
	MaxSize = wire.MaxChunkSize
	// MaxPing bounds a ping's payload.
	MaxPing = 64 << 10
	// benchDiskSpan is how much of the temporary file mode disk fills
	// before it wraps around and rewrites (shared by the streams), so a
	// long run never fills the file system.
	benchDiskSpan = 1 << 30
)

// benchState is a session's benchmark bookkeeping: the run its server side
// has open, and on its client side the lanes waiting for pongs.
type benchState struct {
	mu      sync.Mutex
	run     *benchRun
	nextRun uint64
	pongs   []chan uint64 // client: per lane, the seq of each pong
}

// benchKey keys a session's benchState (Session.State).
type benchKey struct{}

// benchOf returns the session's benchmark state, registering the
// benchmark's data messages on the session when it is first made; an open
// run is closed when the session ends.
func benchOf(s *session.Session) *benchState {
	return s.State(benchKey{}, func() any {
		st := &benchState{}
		for k := wire.MsgBenchData; k <= wire.MsgBenchPong; k++ {
			s.HandleData(k, st.handle)
		}
		s.OnClose(func() {
			st.mu.Lock()
			if st.run != nil {
				st.run.close()
				st.run = nil
			}
			st.mu.Unlock()
		})
		return st
	}).(*benchState)
}

// Scratch makes the temporary file of mode disk: an unnamed file in
// a directory beneath the served tree, gone when closed.
type Scratch interface {
	// ScratchFile creates the file in dir (a path the peer named), or
	// says why it cannot (no such directory, a read-only tree).
	ScratchFile(dir string) (*os.File, error)
}

// Serve offers the benchmark's requests on s; mode disk writes into
// files that scratch makes.
func Serve(s *session.Session, scratch Scratch) {
	st := benchOf(s)
	for _, op := range []string{wire.OpBenchStart, wire.OpBenchStop} {
		s.Handle(op, func(r *wire.Req) { st.serve(s, scratch, r) })
	}
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

// serve answers the peer's bench.* requests.
func (st *benchState) serve(s *session.Session, scratch Scratch, r *wire.Req) {
	var a wire.BenchArgs
	if r.Bench != nil {
		a = *r.Bench
	}
	switch r.Op {
	case wire.OpBenchStart:
		id, err := st.start(s, scratch, a)
		if err != nil {
			s.Reply(wire.ErrResp(r.ID, err))
			return
		}
		s.Reply(benchResp(r.ID, &wire.BenchReply{Run: id}))
	case wire.OpBenchStop:
		ctx := s.Track(r.ID)
		go func() {
			defer s.Untrack(r.ID)
			res, err := st.stop(ctx, s, a)
			if err != nil {
				s.Reply(wire.ErrResp(r.ID, err))
				return
			}
			s.Reply(benchResp(r.ID, res))
		}()
	default:
		s.Reply(&wire.Resp{ID: r.ID, Err: fmt.Sprintf("unknown request %q", r.Op), Kind: wire.KindUsage})
	}
}

func benchResp(id uint64, res *wire.BenchReply) *wire.Resp {
	return &wire.Resp{ID: id, Bench: res}
}

// benchStart opens a run: in mode disk with an unnamed temporary file in
// the directory a.Path beneath the served tree.
func (st *benchState) start(s *session.Session, scratch Scratch, a wire.BenchArgs) (uint64, error) {
	n := len(s.Lanes())
	run := &benchRun{
		bytes:  make([]atomic.Int64, n),
		msgs:   make([]atomic.Int64, n),
		notify: make(chan struct{}, 1),
	}
	switch a.Mode {
	case "", "mem":
	case "disk":
		if a.Size < 1 || a.Size > MaxSize {
			return 0, exitcode.Usagef("bench: message size %d out of range (1 to %d)", a.Size, MaxSize)
		}
		f, err := scratch.ScratchFile(a.Path)
		if err != nil {
			return 0, err
		}
		run.file = f
		run.span = max(a.Size, benchDiskSpan/int64(max(n, 1))/a.Size*a.Size)
		run.pos = make([]int64, n)
	default:
		return 0, exitcode.Usagef("bench: unknown mode %q (want mem or disk)", a.Mode)
	}
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

// stop waits until everything the client says it sent has arrived, then
// closes the run and reports what arrived and what it cost.
func (st *benchState) stop(ctx context.Context, s *session.Session, a wire.BenchArgs) (*wire.BenchReply, error) {
	run := st.lookup(a.Run)
	if run == nil {
		return nil, exitcode.Usagef("bench: no open run %d in this session", a.Run)
	}
	if len(a.Sent) > len(run.bytes) || len(a.Msgs) > len(run.msgs) {
		return nil, exitcode.Usagef("bench: counts for %d streams, the session has %d", max(len(a.Sent), len(a.Msgs)), len(run.bytes))
	}
	run.wait.Store(true)
	idle := time.NewTimer(s.IdleTimeout())
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
			idle.Reset(s.IdleTimeout())
		case <-idle.C:
			return nil, exitcode.Peerf("bench: nothing arrived for %s (%s)", s.IdleTimeout(), missing)
		case <-s.Done():
			return nil, s.EndErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res := &wire.BenchReply{
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

// handle handles the benchmark's data messages on lane l's reader.
func (st *benchState) handle(l *session.Lane, hdr []byte, n int, buf *[]byte) error {
	d := &wire.Dec{Buf: hdr[1:]}
	id := d.Uvar()
	var seq uint64
	if hdr[0] != wire.MsgBenchData {
		seq = d.Uvar()
	}
	if d.Err != nil {
		return fmt.Errorf("bad bench message header: %w", d.Err)
	}
	switch hdr[0] {
	case wire.MsgBenchData, wire.MsgBenchPing:
		data := hdr[0] == wire.MsgBenchData
		what, limit := "data", MaxSize
		if !data {
			what, limit = "ping", MaxPing
		}
		run := st.lookup(id)
		if run == nil {
			return fmt.Errorf("bench %s for run %d, which is not open", what, id)
		}
		p, err := l.Payload(n, limit, buf)
		if err != nil {
			return err
		}
		run.receive(l.Index(), p, data)
		if data {
			return nil
		}
		return l.Send(benchHeader(wire.MsgBenchPong, id, seq), p)
	case wire.MsgBenchPong:
		st.mu.Lock()
		var ch chan uint64
		if l.Index() < len(st.pongs) {
			ch = st.pongs[l.Index()]
		}
		st.mu.Unlock()
		if ch == nil {
			return fmt.Errorf("bench pong %d nobody waits for", seq)
		}
		if _, err := l.Payload(n, MaxPing, buf); err != nil {
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
	if kind != wire.MsgBenchData {
		e.Uvar(seq)
	}
	return e.Buf
}
