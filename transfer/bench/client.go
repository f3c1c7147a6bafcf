package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/pattern"
)

// Bench modes: where the bulk bytes come from and where they go.
const (
	// ModeMem sends from memory (Send, the copy engine's path) and the
	// server discards into a reused buffer.
	ModeMem = "mem"
	// ModeFile sends from a file in the page cache (SendFile: sendfile,
	// READ_FIXED or pread, whatever the transport does for files), as
	// `iperf3 -Z` does; the server discards.
	ModeFile = "file"
	// ModeDisk sends from a file like ModeFile, and the server writes
	// into an unnamed temporary file beneath its export.
	ModeDisk = "disk"
)

// Options configure Session.Bench.
type Options struct {
	Mode     string        // ModeMem (default), ModeFile or ModeDisk
	Size     int           // bulk message size, 1 to MaxSize (default 1 MiB)
	Duration time.Duration // bulk phase; 0 skips it
	// MaxBytes, when > 0, ends the bulk phase early once this many bytes
	// (shared among the lanes) have been sent: a probe bounded in bytes
	// as well as in time.
	MaxBytes int64
	// PingSize and PingDuration set the round-trip phase: one message of
	// PingSize bytes in flight per stream, echoed by the server; a
	// PingDuration of 0 skips it.
	PingSize     int
	PingDuration time.Duration
	// Path is the directory beneath the server's tree where ModeDisk
	// writes its temporary file.
	Path string
	// TempDir holds the sender's source file in modes file and disk
	// (default os.TempDir(); the file is unlinked at once).
	TempDir string
}

// Result is what one Session.Bench measured. Rates are of payload
// bytes: Gbit/s = 10^9 bit/s, GB/s = 10^9 bytes/s.
type Result struct {
	Event       string `json:"event"` // "bench"
	Proto       string `json:"proto"`
	ProtoReason string `json:"proto_reason,omitempty"`
	// Carriers names the transports beneath the streams where the
	// transport says (rdma: UCX's lanes, e.g. sysv and posix on one host).
	Carriers  []string `json:"carriers,omitempty"`
	Mode      string   `json:"mode"`
	Size      int      `json:"size"`
	Streams   int      `json:"streams"`
	DurationS float64  `json:"duration_s"` // first send to the server's receipt of the last byte
	Bytes     int64    `json:"bytes"`
	Messages  int64    `json:"messages"`
	Gbits     float64  `json:"gbit_s"`
	GBs       float64  `json:"gb_s"`
	MsgRate   float64  `json:"msg_s"`
	// CPU seconds (user+system, every thread) of each process during the
	// bulk phase, and the same as a percentage of one core.
	ClientCPU    float64 `json:"client_cpu_s"`
	ServerCPU    float64 `json:"server_cpu_s"`
	ClientCPUPct float64 `json:"client_cpu_pct"`
	ServerCPUPct float64 `json:"server_cpu_pct"`
	// ServerS is the server's own view: bench.start to the last byte.
	ServerS   float64        `json:"server_s"`
	Ping      *Ping          `json:"ping,omitempty"`
	PerStream []StreamResult `json:"per_stream"`
}

// Ping is the round-trip phase of a Result.
type Ping struct {
	Size       int     `json:"size"`
	RoundTrips int64   `json:"round_trips"`
	DurationS  float64 `json:"duration_s"`
	Rate       float64 `json:"rt_s"` // round trips per second, all streams
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	MinUs      float64 `json:"min_us"`
	MaxUs      float64 `json:"max_us"`
	ClientCPU  float64 `json:"client_cpu_s"`
	ServerCPU  float64 `json:"server_cpu_s"`
}

// StreamResult is one stream's share of a Result.
type StreamResult struct {
	Stream      int     `json:"stream"`
	Bytes       int64   `json:"bytes"`
	Messages    int64   `json:"messages"`
	Gbits       float64 `json:"gbit_s"`
	GBs         float64 `json:"gb_s"`
	MsgRate     float64 `json:"msg_s"`
	ServerBytes int64   `json:"server_bytes"`
	RoundTrips  int64   `json:"round_trips,omitempty"`
	RTRate      float64 `json:"rt_s,omitempty"`
	P50us       float64 `json:"p50_us,omitempty"`
	P99us       float64 `json:"p99_us,omitempty"`
}

// Validate checks options a user typed.
func (o Options) Validate() error {
	switch o.Mode {
	case "", ModeMem, ModeFile, ModeDisk:
	default:
		return exitcode.Usagef("--mode %q: want mem, file or disk", o.Mode)
	}
	if o.Size < 0 || o.Size > MaxSize {
		return exitcode.Usagef("--size: want 1 byte to %d MiB, got %d", MaxSize>>20, o.Size)
	}
	if o.PingSize < 0 || o.PingSize > MaxPing {
		return exitcode.Usagef("--ping-size: want 1 byte to %d KiB, got %d", MaxPing>>10, o.PingSize)
	}
	if o.Duration < 0 || o.PingDuration < 0 {
		return exitcode.Usagef("--duration and --ping-duration must not be negative")
	}
	if o.Duration == 0 && o.PingDuration == 0 {
		return exitcode.Usagef("nothing to measure: --duration and --ping-duration are both 0")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeMem
	}
	if o.Size == 0 {
		o.Size = 1 << 20
	}
	if o.PingSize == 0 {
		o.PingSize = 64
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	return o
}

// Run measures the session's transport against the server: a bulk phase
// (messages of o.Size on every lane for o.Duration, one way), then a
// round-trip phase (o.PingSize messages echoed, one in flight per lane, for
// o.PingDuration). The server must be an `xfer serve` (or any peer whose
// handler serves bench.*).
func Run(ctx context.Context, s *session.Session, o Options) (*Result, error) {
	return (&client{s}).run(ctx, o)
}

// client runs a benchmark against the peer of its session.
type client struct{ *session.Session }

func (s *client) run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	res := &Result{Event: "bench", Proto: s.Transport(), ProtoReason: s.TransportReason(), Carriers: s.Carriers(), Mode: o.Mode,
		Size: o.Size, Streams: len(s.Lanes()), PerStream: make([]StreamResult, len(s.Lanes()))}
	for i := range res.PerStream {
		res.PerStream[i].Stream = i
	}
	if o.Duration > 0 {
		if err := s.benchBulk(ctx, o, res); err != nil {
			return nil, err
		}
	}
	if o.PingDuration > 0 {
		if err := s.benchPing(ctx, o, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (s *client) benchCall(ctx context.Context, op string, a *wire.BenchArgs) (*wire.BenchReply, error) {
	resp, err := s.Call(ctx, &wire.Req{Op: op, Bench: a})
	if err != nil {
		var re *session.RemoteError
		if errors.As(err, &re) && re.Kind == wire.KindUsage && strings.HasPrefix(re.Msg, "unknown request ") {
			return nil, exitcode.Peerf("peer %s does not serve xfer bench (an older xfer serve?)", s.Peer())
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.Bench == nil {
		return nil, exitcode.Peerf("peer %s: %s answered without a result", s.Peer(), op)
	}
	return resp.Bench, nil
}

// benchSource makes the sender's file for modes file and disk: size bytes
// of a pattern, unlinked at once (it lives while open), read once so it is
// in the page cache like a file a copy has just hashed.
func benchSource(dir string, size int) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".xfer-bench-src-*")
	if err != nil {
		return nil, fmt.Errorf("bench: source file: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(pattern.Bytes(size, 0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: source file: %w", err)
	}
	return f, nil
}

// benchBulk runs the bulk phase into res.
func (s *client) benchBulk(ctx context.Context, o Options, res *Result) error {
	var (
		src     *os.File
		payload []byte
	)
	serverMode := ModeMem
	if o.Mode == ModeMem {
		payload = pattern.Bytes(o.Size, 0)
	} else {
		var err error
		if src, err = benchSource(o.TempDir, o.Size); err != nil {
			return err
		}
		defer src.Close()
		if o.Mode == ModeDisk {
			serverMode = ModeDisk
		}
	}
	start, err := s.benchCall(ctx, wire.OpBenchStart, &wire.BenchArgs{Mode: serverMode, Path: o.Path, Size: int64(o.Size)})
	if err != nil {
		return err
	}
	n := len(s.Lanes())
	sent, msgs := make([]int64, n), make([]int64, n)
	errs := make([]error, n)
	cpu0, t0 := cpuTime(), time.Now()
	deadline := t0.Add(o.Duration)
	laneMax := int64(math.MaxInt64)
	if o.MaxBytes > 0 {
		laneMax = max(o.MaxBytes/int64(n), int64(o.Size))
	}
	hdr := benchHeader(wire.MsgBenchData, start.Run, 0)
	var wg sync.WaitGroup
	for i, l := range s.Lanes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent[i] < laneMax && time.Now().Before(deadline) {
				if err := ctx.Err(); err != nil {
					errs[i] = err
					return
				}
				var err error
				if src != nil {
					err = l.SendFile(hdr, src, 0, o.Size)
				} else {
					err = l.Send(hdr, payload)
				}
				if err != nil {
					errs[i] = err
					return
				}
				sent[i] += int64(o.Size)
				msgs[i]++
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench over %s: %w", s.Transport(), err)
		}
	}
	stop, err := s.benchCall(ctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run, Sent: sent, Msgs: msgs})
	if err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	res.ClientCPU = (cpuTime() - cpu0).Seconds()
	res.ServerCPU = stop.CPU
	res.ServerS = stop.Elapsed
	res.DurationS = el
	for i := range s.Lanes() {
		ps := &res.PerStream[i]
		ps.Bytes, ps.Messages = sent[i], msgs[i]
		if i < len(stop.Bytes) {
			ps.ServerBytes = stop.Bytes[i]
		}
		ps.Gbits, ps.GBs, ps.MsgRate = rates(ps.Bytes, ps.Messages, el)
		res.Bytes += ps.Bytes
		res.Messages += ps.Messages
	}
	res.Gbits, res.GBs, res.MsgRate = rates(res.Bytes, res.Messages, el)
	res.ClientCPUPct = 100 * res.ClientCPU / el
	res.ServerCPUPct = 100 * res.ServerCPU / el
	return nil
}

func rates(bytes, msgs int64, secs float64) (gbits, gbs, msgRate float64) {
	if secs <= 0 {
		return 0, 0, 0
	}
	return float64(bytes) * 8 / secs / 1e9, float64(bytes) / secs / 1e9, float64(msgs) / secs
}

// benchPing runs the round-trip phase into res.
func (s *client) benchPing(ctx context.Context, o Options, res *Result) error {
	start, err := s.benchCall(ctx, wire.OpBenchStart, &wire.BenchArgs{Mode: ModeMem})
	if err != nil {
		return err
	}
	n := len(s.Lanes())
	st := benchOf(s.Session)
	st.mu.Lock()
	st.pongs = make([]chan uint64, n)
	for i := range st.pongs {
		st.pongs[i] = make(chan uint64, 1)
	}
	pongs := st.pongs
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.pongs = nil
		st.mu.Unlock()
	}()
	payload := pattern.Bytes(o.PingSize, 0)
	rtts := make([][]time.Duration, n)
	sent, msgs := make([]int64, n), make([]int64, n)
	errs := make([]error, n)
	cpu0, t0 := cpuTime(), time.Now()
	deadline := t0.Add(o.PingDuration)
	var wg sync.WaitGroup
	for i, l := range s.Lanes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.pingLane(ctx, l, start.Run, payload, pongs[i], deadline, &rtts[i])
			msgs[i] = int64(len(rtts[i]))
			sent[i] = msgs[i] * int64(len(payload))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench round trips over %s: %w", s.Transport(), err)
		}
	}
	el := time.Since(t0).Seconds()
	stop, err := s.benchCall(ctx, wire.OpBenchStop, &wire.BenchArgs{Run: start.Run, Sent: sent, Msgs: msgs})
	if err != nil {
		return err
	}
	p := &Ping{Size: o.PingSize, DurationS: el, ClientCPU: (cpuTime() - cpu0).Seconds(), ServerCPU: stop.CPU}
	var all []time.Duration
	for i := range s.Lanes() {
		ps := &res.PerStream[i]
		sort.Slice(rtts[i], func(a, b int) bool { return rtts[i][a] < rtts[i][b] })
		ps.RoundTrips = int64(len(rtts[i]))
		ps.RTRate = float64(ps.RoundTrips) / el
		ps.P50us, ps.P99us = micros(percentile(rtts[i], 50)), micros(percentile(rtts[i], 99))
		all = append(all, rtts[i]...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	p.RoundTrips = int64(len(all))
	p.Rate = float64(p.RoundTrips) / el
	p.P50us, p.P99us = micros(percentile(all, 50)), micros(percentile(all, 99))
	if len(all) > 0 {
		p.MinUs, p.MaxUs = micros(all[0]), micros(all[len(all)-1])
	}
	res.Ping = p
	return nil
}

// pingTimeout is how long a ping may wait for its echo.
const pingTimeout = 30 * time.Second

// pingLane sends pings on l one at a time until deadline, recording each
// round trip in *rtts.
func (s *client) pingLane(ctx context.Context, l *session.Lane, run uint64, payload []byte, pongs chan uint64, deadline time.Time, rtts *[]time.Duration) error {
	timer := time.NewTimer(pingTimeout)
	defer timer.Stop()
	for seq := uint64(1); time.Now().Before(deadline); seq++ {
		t := time.Now()
		if err := l.Send(benchHeader(wire.MsgBenchPing, run, seq), payload); err != nil {
			return err
		}
		timer.Reset(pingTimeout)
		select {
		case got := <-pongs:
			if got != seq {
				return exitcode.Peerf("peer %s echoed ping %d, expected %d", s.Peer(), got, seq)
			}
		case <-timer.C:
			return exitcode.Peerf("peer %s did not echo ping %d on stream %d within %s", s.Peer(), seq, l.Index(), pingTimeout)
		case <-s.Done():
			return s.EndErr()
		case <-ctx.Done():
			return ctx.Err()
		}
		*rtts = append(*rtts, time.Since(t))
	}
	return nil
}

// percentile returns the nearest-rank p-th percentile of sorted d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[min(max(k, 0), len(d)-1)]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
