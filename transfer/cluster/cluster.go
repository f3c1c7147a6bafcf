// Package cluster coordinates a transfer spread over the agents of
// cluster remotes (several `xfer serve` processes that show the same tree
// from a shared file system): it pairs agents, runs one share of the
// transfer per pair, moves a lost agent's share to survivors, runs the
// final pass, and accounts per agent. Which files a share carries is
// plan.Shares; running a transfer on a pair is the Runner's.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/xfer-io/xfer/transfer/session"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
)

// Side is one side of a cluster transfer.
type Side struct {
	// Name is how messages call the side (its path or URL).
	Name string
	// Agents are the addresses of its agents; one "" for a local path.
	Agents []string
}

// Runner carries out what the coordinator asks of agents, which it names
// by their index in their Side's Agents.
type Runner interface {
	// Run runs one transfer with opt from source agent si to destination
	// agent di, reporting to sink and tally.
	Run(ctx context.Context, si, di int, opt wire.Options, sink progress.Sink, tally *progress.Tally) error
	// SourceExists asks source agent i whether the source is there (an
	// error: the agent could not be asked).
	SourceExists(ctx context.Context, i int) (bool, error)
	// Lock takes the destination's run lock through destination agent i
	// and returns its release.
	Lock(ctx context.Context, i int) (release func(), err error)
}

// clusterSide is one side of a cluster transfer and which of its agents
// were lost.
type clusterSide struct {
	Side
	agents []string
	lost   []bool
}

func newClusterSide(s Side) *clusterSide {
	if len(s.Agents) == 0 {
		s.Agents = []string{""}
	}
	return &clusterSide{Side: s, agents: s.Agents, lost: make([]bool, len(s.Agents))}
}

// cluster is the state of one cluster transfer.
type cluster struct {
	src, dst *clusterSide
	opt      wire.Options
	runner   Runner
	sink     progress.Sink

	mu     sync.Mutex
	agents map[string]progress.AgentStats
	// sums of what the shares did, across all their attempts
	shared progress.Summary
	// latest progress of each share and of the final pass
	prog []progress.Event
}

// Run spreads one copy or sync over every agent of the sides src and
// dst. This process only coordinates:
//
//  1. It takes the destination's run lock once, for the whole transfer.
//  2. It pairs agents, source agent k%S with destination agent k%D for
//     k < max(S, D), and runs one share (Shard) of the transfer per pair:
//     the source agent walks the tree, moves the regular files the
//     byte balance gives to its share, and pushes them straight to its
//     destination agent.
//  3. A share whose agent dies is run again on a pair of survivors;
//     finished files are skipped and partial ones resume from their
//     journals, so nothing is sent twice.
//  4. A final pass on one surviving pair does what shares leave out
//     (directories and their attributes, symlinks, hard links,
//     deletions) and anything a share could not finish, and is the
//     check that the destination matches the source.

func Run(ctx context.Context, src, dst Side, opt wire.Options, r Runner, sink progress.Sink, tally *progress.Tally) error {
	c := &cluster{src: newClusterSide(src), dst: newClusterSide(dst), opt: opt, runner: r, sink: sink,
		agents: map[string]progress.AgentStats{}}
	for _, side := range []*clusterSide{c.src, c.dst} {
		for _, a := range side.agents {
			if a != "" {
				c.agents[a] = progress.AgentStats{}
			}
		}
	}
	n := max(len(c.src.agents), len(c.dst.agents))
	if n > wire.MaxShards {
		return exitcode.Usagef("%d agents: at most %d pairs per transfer", n, wire.MaxShards)
	}
	c.prog = make([]progress.Event, n+1)
	defer func() { tally.Merge(progress.Summary{Agents: c.agentStats()}) }()

	if !opt.DryRun {
		// Nothing is created at the destination for a source that is
		// not there (the final pass reports a missing source of a dry run).
		if err := c.checkSource(ctx); err != nil {
			return err
		}
	}
	if opt.Lock && !opt.DryRun {
		unlock, err := c.lock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	final := opt
	final.Lock = false
	if !opt.DryRun {
		final.SplitShares = n
	}
	if !opt.DryRun {
		if err := c.shares(ctx, n, tally); err != nil {
			return err
		}
	}

	// The final pass, on the first pair of survivors.
	si, di, err := c.pick(0)
	if err != nil {
		return err
	}
	ft := progress.NewTally()
	err = c.runner.Run(ctx, si, di, final, c.progressSink(n, false), ft)
	fs := ft.Summary()
	c.credit(si, di, fs, err == nil, false)
	c.mu.Lock()
	sh := c.shared
	c.mu.Unlock()
	// Files the shares moved show up as unchanged in the final pass.
	fs.FilesSkipped -= sh.FilesTransferred
	if fs.FilesSkipped < 0 {
		fs.FilesSkipped = 0
	}
	fs.FilesTransferred += sh.FilesTransferred
	fs.BytesTransferred += sh.BytesTransferred
	fs.BytesSent += sh.BytesSent
	fs.PlannedBytes += sh.PlannedBytes
	fs.DirsCreated += sh.DirsCreated
	if fs.Proto == "" {
		fs.Proto, fs.ProtoReason = sh.Proto, sh.ProtoReason
	}
	fs.Agents = nil
	tally.Merge(fs)
	if err != nil && isAgentLoss(err) {
		// The final pass lost its pair: say which agent, so that a
		// retry of the whole transfer (Run) knows why.
		c.markLost(ctx, si, di, err)
	}
	return err
}

// checkSource fails if the source does not exist, asking the first
// source agent that answers.
func (c *cluster) checkSource(ctx context.Context) error {
	var last error
	for i := range c.src.agents {
		ok, err := c.runner.SourceExists(ctx, i)
		if err != nil {
			if !isAgentLoss(err) || !c.markLost(ctx, i, -1, err) {
				return err
			}
			last = err
			continue
		}
		if !ok {
			return exitcode.Usagef("source %s does not exist", c.src.Name)
		}
		return nil
	}
	return fmt.Errorf("no agent of the source answers: %w", last)
}

// lock takes the destination's run lock for the whole transfer, through
// the first destination agent that answers, and returns its release.
func (c *cluster) lock(ctx context.Context) (func(), error) {
	var last error
	for i := range c.dst.agents {
		release, err := c.runner.Lock(ctx, i)
		if err != nil {
			if !isAgentLoss(err) || !c.markLost(ctx, -1, i, err) {
				return nil, err
			}
			last = err
			continue
		}
		return release, nil
	}
	return nil, fmt.Errorf("no agent of the destination answers: %w", last)
}

// shares runs the n shares of the transfer in parallel, each on its
// pair, moving a share to survivors when an agent of its pair is lost.
func (c *cluster) shares(ctx context.Context, n int, tally *progress.Tally) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = c.share(ctx, k, n)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// share runs share k of n until it completes or no pair of survivors is
// left. Failures of single files are left to the final pass.
func (c *cluster) share(ctx context.Context, k, n int) error {
	opt := c.opt
	opt.Lock, opt.Delete = false, false
	opt.Shard = &wire.Shard{Index: k, Count: n}
	if opt.BwLimit > 0 {
		// --bwlimit caps the whole transfer: the shares run at once.
		opt.BwLimit = max((opt.BwLimit+int64(n)-1)/int64(n), 1024)
	}
	for attempt := 0; ; attempt++ {
		si, di, err := c.pick(k)
		if err != nil {
			return err
		}
		t := progress.NewTally()
		err = c.runner.Run(ctx, si, di, opt, c.progressSink(k, true), t)
		c.credit(si, di, t.Summary(), err == nil, true)
		switch {
		case err == nil:
			return nil // failed files are retried by the final pass
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case !isAgentLoss(err):
			return err
		}
		if !c.markLost(ctx, si, di, err) && attempt >= max(c.opt.Retries, 0) {
			return err // both agents answer, yet the share keeps failing
		}
	}
}

// pick returns the pair of surviving agents for share k.
func (c *cluster) pick(k int) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	si, err := c.src.survivor(k)
	if err != nil {
		return 0, 0, err
	}
	di, err := c.dst.survivor(k)
	if err != nil {
		return 0, 0, err
	}
	return si, di, nil
}

func (c *clusterSide) survivor(k int) (int, error) {
	var alive []int
	for i, l := range c.lost {
		if !l {
			alive = append(alive, i)
		}
	}
	if len(alive) == 0 {
		return 0, exitcode.Peerf("every agent of %s was lost (%s)", c.Name, strings.Join(c.agents, ", "))
	}
	if !c.lost[k%len(c.agents)] {
		return k % len(c.agents), nil
	}
	return alive[k%len(alive)], nil
}

// isAgentLoss reports whether err may mean that an agent went away: a
// lost or refused connection, a peer error.
func isAgentLoss(err error) bool {
	var lost *session.LostError
	return errors.As(err, &lost) || exitcode.Code(err) == exitcode.Peer
}

// markLost finds out which agents of a failed pair no longer answer and
// marks them lost; it reports whether it found any.
func (c *cluster) markLost(ctx context.Context, si, di int, cause error) bool {
	found := false
	for _, p := range []struct {
		side *clusterSide
		i    int
	}{{c.src, si}, {c.dst, di}} {
		if p.i < 0 {
			continue
		}
		addr := p.side.agents[p.i]
		if addr == "" {
			continue
		}
		if err := c.probe(ctx, addr); err != nil {
			c.lose(p.side, p.i, fmt.Errorf("%v; %v", cause, err))
			found = true
		}
	}
	return found
}

// probe checks that an agent still accepts connections.
func (c *cluster) probe(ctx context.Context, addr string) error {
	to := c.opt.ConnectTO
	if to <= 0 || to > 5*time.Second {
		to = 5 * time.Second
	}
	d := net.Dialer{Timeout: to}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// lose marks agent i of side lost and says so.
func (c *cluster) lose(side *clusterSide, i int, why error) {
	c.mu.Lock()
	already := side.lost[i]
	side.lost[i] = true
	a := c.agents[side.agents[i]]
	a.Lost = true
	c.agents[side.agents[i]] = a
	c.mu.Unlock()
	if !already {
		c.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("agent %s lost (%v); its work moves to the other agents", side.agents[i], why)})
	}
}

// credit adds what one run on pair (si, di) did to both agents, and a
// share's run to the shares' totals.
func (c *cluster) credit(si, di int, s progress.Summary, complete, share bool) {
	bytes := s.BytesSent
	if !complete && bytes == 0 {
		// A remote job that failed sends no summary: count what its
		// events showed arriving.
		bytes = s.BytesTransferred
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range []string{c.src.agents[si], c.dst.agents[di]} {
		if name == "" {
			continue
		}
		a := c.agents[name]
		a.Bytes += bytes
		a.Files += s.FilesTransferred
		c.agents[name] = a
	}
	if !share {
		return
	}
	c.shared.FilesTransferred += s.FilesTransferred
	c.shared.BytesTransferred += s.BytesTransferred
	c.shared.BytesSent += bytes
	c.shared.PlannedBytes += s.PlannedBytes
	c.shared.DirsCreated += s.DirsCreated
	if s.Proto != "" && c.shared.Proto == "" {
		c.shared.Proto, c.shared.ProtoReason = s.Proto, s.ProtoReason
	}
}

// progressSink relays the events of share k (or of the final pass, k ==
// number of shares) to the user: progress summed over all runs, and in a
// share, per-file errors as notices because the final pass tries those
// files again and reports what really failed.
func (c *cluster) progressSink(k int, share bool) progress.Sink {
	return progress.SinkFunc(func(e progress.Event) {
		switch e.Event {
		case progress.KindProgress:
			c.mu.Lock()
			c.prog[k] = e
			var sum progress.Event
			sum.Event = progress.KindProgress
			for _, p := range c.prog {
				sum.BytesDone += p.BytesDone
				sum.BytesTotal += p.BytesTotal
				sum.FilesDone += p.FilesDone
				sum.FilesTotal += p.FilesTotal
				sum.Listing = sum.Listing || p.Listing
				for _, f := range p.InFlight {
					if len(sum.InFlight) < progress.MaxInFlight {
						sum.InFlight = append(sum.InFlight, f)
					}
				}
			}
			c.mu.Unlock()
			c.sink.Emit(sum)
			return
		case progress.KindError:
			if share {
				c.sink.Emit(progress.Event{Event: progress.KindNotice, Path: e.Path,
					Msg: fmt.Sprintf("%s (the final pass tries it again)", e.Error)})
				return
			}
		}
		c.sink.Emit(e)
	})
}

// agentStats copies the per-agent counters.
func (c *cluster) agentStats() map[string]progress.AgentStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]progress.AgentStats, len(c.agents))
	for k, v := range c.agents {
		m[k] = v
	}
	return m
}
