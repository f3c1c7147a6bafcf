package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/bench"
)

func newBenchCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "bench --to xfer://HOST:PORT [--proto P|all] [--duration 10s] [--size 1M] [--streams N] [--mode mem|file|disk]",
		Short: "Measure the data transports against an xfer serve peer",
		Long: `Bench measures the transport to an xfer serve peer in the manner of iperf3:
it opens a session as copy does (same negotiation, same data streams), sends
messages of --size one way on every stream for --duration, then measures
round trips of --ping-size messages (one in flight per stream) for
--ping-duration. It prints throughput (Gbit/s and GB/s, 10^9), messages per
second, round-trip latency p50/p99 and round trips per second, per stream
and in total, and the CPU time both processes used during the bulk phase
(on the server: all of xfer serve, other sessions included).

The bytes go through the same calls a copy makes:
  mem   the client sends from memory (what copy does with chunks it has
        read and hashed); the server receives into a reused buffer
  file  the client sends a file from the page cache (sendfile on tcp and
        tcp-zc, as iperf3 -Z does); the server receives into memory
  disk  as file, and the server writes into an unnamed temporary file in
        DIR beneath its tree (xfer://HOST:PORT/DIR), gone when the run ends

--proto all measures every transport usable on both ends, one after the
other, and prints one row per transport. For rdma without RDMA hardware,
set UCX_TLS (e.g. UCX_TLS=tcp UCX_NET_DEVICES=lo on loopback) for both
xfer serve and xfer bench. --json prints one JSON object per transport.`,
		Example: `  xfer bench --to xfer://10.0.0.1:7878 --proto all
  xfer bench --to xfer://10.0.0.1:7878 --proto tcp-zc --mode file --streams 1 --duration 30s
  xfer bench --to nodeA:/scratch --mode disk --json
  xfer bench --to xfer://10.0.0.1:7878 --proto uring --size 64 --duration 5s`,
		Args: usageArgs(cobra.NoArgs),
		RunE: a.runBench,
	}
	f := c.Flags()
	f.String("to", "", "the peer: xfer://HOST:PORT[/DIR] or NAME:[DIR] (DIR: where --mode disk writes)")
	addDialFlags(c, dialFlagSpec{
		protos:       append(append([]string{}, protoWords...), "all"),
		protoUsage:   "data transport: auto, tcp, tcp-zc, uring, rdma, or all (one row per transport both ends can use)",
		streams:      transfer.DefaultStreams,
		streamsUsage: "parallel data streams (the server may grant fewer)",
		peer:         "the peer",
	})
	durationFlag(f, "duration", 10*time.Second, 0, "how long to send bulk messages, per transport (0: skip)")
	sizeRangeFlag(f, "size", "1M", 1, bench.MaxSize, "bulk message size (1 byte to 64M)")
	f.String("mode", "mem", "mem (memory to memory), file (sender's file via sendfile etc., like iperf3 -Z) or disk (file to a file on the server)")
	sizeRangeFlag(f, "ping-size", "64", 1, bench.MaxPing, "size of the messages whose round trips are timed (1 byte to 64K)")
	durationFlag(f, "ping-duration", 2*time.Second, 0, "how long to time round trips, per transport (0: skip)")
	return c
}

func (a *app) runBench(cmd *cobra.Command, _ []string) error {
	to := a.v.GetString("to")
	if to == "" {
		return exitcode.Usagef("--to is required: the xfer serve peer to measure against (xfer://HOST:PORT)")
	}
	remotes, err := a.remotes()
	if err != nil {
		return err
	}
	ep, err := a.endpoint(to, remotes)
	if err != nil {
		return err
	}
	if !ep.IsRemote() {
		return exitcode.Usagef("--to %s: want a peer (xfer://HOST:PORT or NAME:), not a local path", to)
	}
	size, err := parseSize(a.v.GetString("size"))
	if err != nil || size < 1 || size > bench.MaxSize {
		return exitcode.Usagef("--size %q: want 1 byte to %dM", a.v.GetString("size"), bench.MaxSize>>20)
	}
	ping, err := parseSize(a.v.GetString("ping-size"))
	if err != nil || ping < 1 || ping > bench.MaxPing {
		return exitcode.Usagef("--ping-size %q: want 1 byte to %dK", a.v.GetString("ping-size"), bench.MaxPing>>10)
	}
	do, err := a.dialOptions(ep.Auth)
	if err != nil {
		return err
	}
	bo := bench.Options{
		Mode:         a.v.GetString("mode"),
		Size:         int(size),
		Duration:     a.v.GetDuration("duration"),
		PingSize:     int(ping),
		PingDuration: a.v.GetDuration("ping-duration"),
		Path:         ep.Path,
	}
	if err := bo.Validate(); err != nil {
		return err
	}
	proto := a.v.GetString("proto")
	protos, skipped, err := benchProtos(proto)
	if err != nil {
		return err
	}
	out := &benchOutput{w: a.stdout, json: a.v.GetBool("json"), all: proto == "all",
		addr: ep.Addr, opt: bo}
	var firstErr error
	ok := 0
	for _, p := range protos {
		do.Proto = p
		s, err := transfer.Dial(cmd.Context(), ep.Addr, do)
		if err != nil {
			if !out.all {
				return err
			}
			// Not usable on the server (or refused): a note, not a row.
			skipped = append(skipped, benchSkip{p, err.Error()})
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		res, err := bench.Run(cmd.Context(), s, bo)
		s.Close()
		if err != nil {
			return fmt.Errorf("bench %s over %s: %w", ep.Addr, p, err)
		}
		ok++
		out.row(res)
	}
	out.finish(skipped)
	if ok == 0 && firstErr != nil {
		return firstErr
	}
	return nil
}

// benchSkip is a transport --proto all could not measure, and why.
type benchSkip struct{ proto, why string }

// benchProtos resolves --proto: the transports to measure, in preference
// order, and (for all) the ones this side cannot use.
func benchProtos(p string) ([]string, []benchSkip, error) {
	if p != "all" {
		if p != "auto" && !backends.Known(p) {
			return nil, nil, exitcode.Usagef("--proto %q: want auto, all, tcp, tcp-zc, uring or rdma", p)
		}
		return []string{p}, nil, nil
	}
	var use []string
	var skip []benchSkip
	for _, st := range transportStatuses() {
		if st.Usable {
			use = append(use, st.Name)
		} else {
			skip = append(skip, benchSkip{st.Name, "unavailable here: " + st.Reason})
		}
	}
	return use, skip, nil
}

// benchOutput prints results as they come: a table (one row per transport
// with --proto all, per stream otherwise) or JSON lines.
type benchOutput struct {
	w      io.Writer
	json   bool
	all    bool
	addr   string
	opt    bench.Options
	header bool
}

func (o *benchOutput) row(r *bench.Result) {
	if o.json {
		json.NewEncoder(o.w).Encode(r)
		return
	}
	if !o.all {
		o.detail(r)
		return
	}
	if !o.header {
		fmt.Fprintf(o.w, "xfer bench to %s: %s\n", o.addr, describeBench(o.opt, r.Streams))
		fmt.Fprintf(o.w, "%-7s %7s %8s %7s %10s %9s %9s %9s %13s %13s\n",
			"proto", "streams", "Gbit/s", "GB/s", "msg/s", "p50 µs", "p99 µs", "rt/s", "client cpu", "server cpu")
		o.header = true
	}
	p50, p99, rt := pingCols(r.Ping)
	fmt.Fprintf(o.w, "%-7s %7d %8s %7s %10s %9s %9s %9s %13s %13s\n", r.Proto, r.Streams,
		num(r.Gbits, 2, r.Bytes > 0), num(r.GBs, 3, r.Bytes > 0), num(r.MsgRate, 0, r.Bytes > 0), p50, p99, rt,
		cpuCol(r.ClientCPU, r.ClientCPUPct, r.Bytes > 0), cpuCol(r.ServerCPU, r.ServerCPUPct, r.Bytes > 0))
}

// detail prints one transport's result per stream.
func (o *benchOutput) detail(r *bench.Result) {
	fmt.Fprintf(o.w, "xfer bench to %s over %s: %s\n", o.addr, r.Proto, describeBench(o.opt, r.Streams))
	if r.ProtoReason != "" {
		fmt.Fprintf(o.w, "transport: %s (%s)\n", r.Proto, r.ProtoReason)
	}
	if len(r.Carriers) > 0 {
		fmt.Fprintf(o.w, "%s runs over: %s\n", r.Proto, strings.Join(r.Carriers, ", "))
	}
	bulk := r.Bytes > 0
	fmt.Fprintf(o.w, "%-7s %8s %7s %10s %9s %9s %9s\n", "stream", "Gbit/s", "GB/s", "msg/s", "p50 µs", "p99 µs", "rt/s")
	for _, s := range r.PerStream {
		p50, p99, rt := "-", "-", "-"
		if r.Ping != nil {
			p50, p99, rt = num(s.P50us, 1, true), num(s.P99us, 1, true), num(s.RTRate, 0, true)
		}
		fmt.Fprintf(o.w, "%-7d %8s %7s %10s %9s %9s %9s\n", s.Stream,
			num(s.Gbits, 2, bulk), num(s.GBs, 3, bulk), num(s.MsgRate, 0, bulk), p50, p99, rt)
	}
	p50, p99, rt := pingCols(r.Ping)
	fmt.Fprintf(o.w, "%-7s %8s %7s %10s %9s %9s %9s\n", "total",
		num(r.Gbits, 2, bulk), num(r.GBs, 3, bulk), num(r.MsgRate, 0, bulk), p50, p99, rt)
	if bulk {
		fmt.Fprintf(o.w, "bulk: %s in %.2f s; cpu: client %.2f s (%.0f%% of a core), server %.2f s (%.0f%%)\n",
			humanBytes(r.Bytes), r.DurationS, r.ClientCPU, r.ClientCPUPct, r.ServerCPU, r.ServerCPUPct)
	}
}

func (o *benchOutput) finish(skipped []benchSkip) {
	for _, s := range skipped {
		if o.json {
			json.NewEncoder(o.w).Encode(map[string]string{"event": "bench", "proto": s.proto, "skipped": s.why})
			continue
		}
		fmt.Fprintf(o.w, "%s skipped: %s\n", s.proto, s.why)
	}
}

func describeBench(o bench.Options, streams int) string {
	mode := o.Mode
	if mode == "" {
		mode = bench.ModeMem
	}
	var parts []string
	if o.Duration > 0 {
		parts = append(parts, fmt.Sprintf("%s messages for %s", humanBytes(int64(o.Size)), o.Duration))
	}
	if o.PingDuration > 0 {
		parts = append(parts, fmt.Sprintf("%s round trips for %s", humanBytes(int64(o.PingSize)), o.PingDuration))
	}
	return fmt.Sprintf("mode %s, %d streams, %s", mode, streams, strings.Join(parts, "; "))
}

func pingCols(p *bench.Ping) (string, string, string) {
	if p == nil {
		return "-", "-", "-"
	}
	return num(p.P50us, 1, true), num(p.P99us, 1, true), num(p.Rate, 0, true)
}

func num(v float64, prec int, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func cpuCol(secs, pct float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fs %3.0f%%", secs, pct)
}

// humanBytes prints n in binary units (1 MiB, 64 B).
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
