// Package metrics holds xfer's Prometheus metrics and the HTTP endpoint that
// serves them (`/metrics`, plus `/healthz` for liveness probes).
//
// Each Metrics value has its own registry, never the process-global default
// one, so a test or a process can hold several independent sets. Every
// method is safe on a nil *Metrics and then does nothing, so code that moves
// data can call them unconditionally whether metrics are enabled or not.
//
// Throughput is not a metric of its own: it is the rate of the byte
// counter, e.g. `sum by (transport, direction) (rate(xfer_bytes_total[1m]))`
// in bytes per second (docs/operations.md lists more queries).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Direction label values: data this process sent, or received.
const (
	Sent     = "sent"
	Received = "received"
)

// Metrics is one set of xfer metrics with its own registry.
type Metrics struct {
	reg            *prometheus.Registry
	bytes          *prometheus.CounterVec
	files          *prometheus.CounterVec
	sessions       prometheus.Gauge
	chunkRetries   prometheus.Counter
	verifyFailures prometheus.Counter
	dirsRead       prometheus.Counter
	daemonOp       *prometheus.HistogramVec
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, in a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xfer_bytes_total",
			Help: "File data bytes moved, by data transport (tcp, tcp-zc, uring, rdma) and direction (sent, received).",
		}, []string{"transport", "direction"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xfer_files_total",
			Help: "Files moved and committed, by data transport and direction (sent, received).",
		}, []string{"transport", "direction"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "xfer_active_sessions",
			Help: "Sessions with peers open right now.",
		}),
		chunkRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xfer_chunk_retries_total",
			Help: "Chunks sent again after the receiver refused them or a stream failed.",
		}),
		verifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xfer_verify_failures_total",
			Help: "BLAKE3 verification failures of a chunk or a whole file.",
		}),
		dirsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "xfer_dirs_read_total",
			Help: "Source directories the walks of this server's jobs read (its share of cluster walks).",
		}),
		daemonOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "xfer_daemon_op_seconds",
			Help: "Time the node-local daemon took to complete a request, by operation.",
			// 1 ms to about 17 minutes: requests range from a lookup to a
			// whole transfer.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 11),
		}, []string{"op"}),
	}
	m.reg.MustRegister(
		m.bytes, m.files, m.sessions, m.chunkRetries, m.verifyFailures, m.dirsRead, m.daemonOp,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the registry the metrics live in, for adding more collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// adder is what the counters and the gauge have in common.
type adder interface{ Add(float64) }

// add adds n to the metric that pick returns; on a nil m it does nothing
// (and pick, which reads m's fields, is not called).
func (m *Metrics) add(n float64, pick func() adder) {
	if m != nil {
		pick().Add(n)
	}
}

// AddBytes counts n bytes of file data moved over transport in direction
// (Sent or Received).
func (m *Metrics) AddBytes(transport, direction string, n int64) {
	if n > 0 {
		m.add(float64(n), func() adder { return m.bytes.WithLabelValues(transport, direction) })
	}
}

// AddFiles counts n files moved over transport in direction.
func (m *Metrics) AddFiles(transport, direction string, n int) {
	if n > 0 {
		m.add(float64(n), func() adder { return m.files.WithLabelValues(transport, direction) })
	}
}

// SessionStarted counts a session as open; call SessionEnded when it closes.
func (m *Metrics) SessionStarted() { m.add(1, func() adder { return m.sessions }) }

// SessionEnded counts a session as closed.
func (m *Metrics) SessionEnded() { m.add(-1, func() adder { return m.sessions }) }

// ChunkRetry counts one chunk sent again.
func (m *Metrics) ChunkRetry() { m.add(1, func() adder { return m.chunkRetries }) }

// VerifyFailure counts one failed BLAKE3 verification.
func (m *Metrics) VerifyFailure() { m.add(1, func() adder { return m.verifyFailures }) }

// DirsRead counts n source directories a job's walk read.
func (m *Metrics) DirsRead(n int64) { m.add(float64(n), func() adder { return m.dirsRead }) }

// ObserveDaemonOp records that a daemon request of kind op took d.
func (m *Metrics) ObserveDaemonOp(op string, d time.Duration) {
	if m != nil {
		m.daemonOp.WithLabelValues(op).Observe(d.Seconds())
	}
}

// Handler serves GET /metrics in the Prometheus exposition formats and GET
// /healthz with 200 "ok" (the process is up and serving HTTP).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "ok\n")
	})
	return mux
}

// Serve listens on addr (HOST:PORT, for --metrics-listen) and serves m's
// Handler until ctx is done; see ServeListener.
func Serve(ctx context.Context, addr string, m *Metrics) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, m)
}

// ServeListener serves m's Handler on ln until ctx is done, then shuts down,
// giving scrapes in progress up to 5 seconds, and returns nil. It returns
// an error only if serving fails. ln is closed on return.
func ServeListener(ctx context.Context, ln net.Listener, m *Metrics) error {
	if m == nil {
		ln.Close()
		return errors.New("metrics: serving nil metrics")
	}
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serving on %s: %w", ln.Addr(), err)
	}
	return nil
}
