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

	"github.com/xfer-io/xfer/plan"
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
	// Members, when set, reports agents that leave or join the side
	// during the run (a cluster kept in etcd); nil: Agents stay as they
	// are.
	Members Membership
	// Job, when set, keeps the record of the transfer with the side's
	// cluster (the destination's if both have one): finished shares,
	// which a rerun does not redo, and the destination's lock.
	Job Job
}

// Job is the record of a cluster transfer kept outside this process, so
// that a coordinator killed mid-run is replaced by running the same
// command again.
type Job interface {
	// Begin opens the record of a run that would do p: count is the
	// number of shares of an unfinished earlier run of the same transfer
	// cut the same way (p.Units, p.Cut), or p.Shares for a new one; done
	// and doneUnits list the shares and units an earlier run finished.
	Begin(ctx context.Context, p JobPlan) (count int, done, doneUnits []int, err error)
	// ShareDone records that share k finished, having moved files
	// files and bytes bytes.
	ShareDone(ctx context.Context, k int, files, bytes int64) error
	// UnitDone records that unit k (subtree k of the distributed walk)
	// finished, having moved files files and bytes bytes.
	UnitDone(ctx context.Context, k int, files, bytes int64) error
	// Finish records that the whole transfer finished; the record then
	// expires.
	Finish(ctx context.Context) error
	// Lock takes the destination's lock for the run, held by a lease:
	// it ends with release, or by itself when this process dies.
	Lock(ctx context.Context) (release func(), err error)
}

// JobPlan is what a run of a cluster transfer would do, as its Job
// records it: Shares shares and, for a distributed walk, Units subtrees
// of the cut whose digest is Cut ("" without one).
type JobPlan struct {
	Shares, Units int
	Cut           string
}

// Membership tells the coordinator which agents of a side leave or join
// while it runs.
type Membership interface {
	// Watch calls left with the address of every agent that leaves (its
	// registration ended: deregistered, or its lease expired) and joined
	// with that of every agent that joins (registers), from the moment
	// Agents were read until ctx ends. It returns nil when ctx ends, and
	// an error if it cannot watch any longer; the run then goes on with
	// the agents it knows.
	Watch(ctx context.Context, left, joined func(addr string)) error
}

// SharesPerPair is how many shares a transfer is cut into per agent pair
// when a side's membership is watched: shares wait in a queue that the
// pairs take from, so an agent that joins mid-run finds work. Without a
// watched side there is one share per pair.
const SharesPerPair = 2

// Runner carries out what the coordinator asks of agents, which it names
// by their address ("" for a side that is a local path).
type Runner interface {
	// Run runs one transfer with opt from source agent src to
	// destination agent dst, reporting to sink and tally.
	Run(ctx context.Context, src, dst string, opt wire.Options, sink progress.Sink, tally *progress.Tally) error
	// ListDir reads the source directory dir (relative to the source's
	// top) alone on source agent src: its direct entries, paths relative
	// to dir. isDir is false if dir is not a directory there (nothing,
	// a file, a symlink).
	ListDir(ctx context.Context, src, dir string) (entries []plan.Entry, isDir bool, err error)
	// SourceExists asks source agent src whether the source is there (an
	// error: the agent could not be asked).
	SourceExists(ctx context.Context, src string) (bool, error)
	// Lock takes the destination's run lock through destination agent
	// dst and returns its release.
	Lock(ctx context.Context, dst string) (release func(), err error)
}

// clusterSide is one side of a cluster transfer and which of its agents
// were lost. Agents that join are appended (guarded by cluster.mu), so an
// agent's index never changes.
type clusterSide struct {
	Side
	lost []bool
}

func newClusterSide(s Side) *clusterSide {
	if len(s.Agents) == 0 {
		s.Agents = []string{""}
	}
	return &clusterSide{Side: s, lost: make([]bool, len(s.Agents))}
}

// cluster is the state of one cluster transfer.
type cluster struct {
	src, dst *clusterSide
	opt      wire.Options
	runner   Runner
	sink     progress.Sink

	mu     sync.Mutex
	agents map[string]progress.AgentStats
	// the share queue: the shares of n still to run; stopped once one
	// failed
	n       int
	queue   []int
	stopped bool
	err     error
	job     Job
	// jobErr is set once recording the job failed (said once)
	jobErr bool
	// pairs is how many workers take shares at once (without joiners)
	pairs   int
	workers sync.WaitGroup
	// runs in flight, to cancel those of an agent that leaves
	runs   map[int]flight
	nextID int
	// sums of what the shares did, across all their attempts
	shared progress.Summary
	// latest progress of each share and of the final pass
	prog []progress.Event

	// walk is the distributed walk's cut of the tree (nil: every share
	// walks the whole tree); work items n and up are its subtrees.
	walk *walkPlan
	// walked counts the directories the coordinator had read (expanded)
	walked int64
	// units sums what the subtree units did; partial is the first
	// failure of a unit with failed files, which the run ends with
	units   *progress.Tally
	partial error
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
		agents: map[string]progress.AgentStats{}, units: progress.NewTally()}
	for _, side := range []*clusterSide{c.src, c.dst} {
		for _, a := range side.Agents {
			if a != "" {
				c.agents[a] = progress.AgentStats{}
			}
		}
	}
	c.pairs = max(len(c.src.Agents), len(c.dst.Agents))
	n := c.pairs
	if src.Members != nil || dst.Members != nil {
		n *= SharesPerPair
	}
	if n > wire.MaxShards {
		return exitcode.Usagef("%d agents: at most %d pairs per transfer", c.pairs, wire.MaxShards/SharesPerPair)
	}
	c.runs = map[int]flight{}
	defer func() { tally.Merge(progress.Summary{Agents: c.agentStats()}) }()

	if !opt.DryRun {
		// Nothing is created at the destination for a source that is
		// not there (the final pass reports a missing source of a dry run).
		if err := c.checkSource(ctx); err != nil {
			return err
		}
	}
	if opt.Lock && !opt.DryRun && dst.Job != nil {
		// The cluster's lock, for coordinators on other machines (and
		// file systems without a flock that crosses nodes).
		release, err := dst.Job.Lock(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	c.job = dst.Job
	if c.job == nil {
		c.job = src.Job
	}
	if !opt.DryRun {
		if why := walkOff(opt); why != "" {
			c.sink.Emit(progress.Event{Event: progress.KindNotice, Msg: walkNotice(why)})
		} else {
			p, ok, err := c.expand(ctx)
			if err != nil {
				return err
			}
			if ok {
				c.walk = &p
				if p.bytes < ShareMinBytes {
					n = 0 // the final pass carries the few files of the expanded directories
				}
			}
		}
	}
	var done, doneUnits []int
	if c.job != nil && !opt.DryRun {
		plan := JobPlan{Shares: n}
		if c.walk != nil {
			plan.Units, plan.Cut = len(c.walk.subtrees), c.walk.digest()
		}
		count, d, du, err := c.job.Begin(ctx, plan)
		if err != nil {
			return err
		}
		if count < 0 || count > wire.MaxShards || count == 0 && c.walk == nil {
			return fmt.Errorf("the job's record holds %d shares: out of range", count)
		}
		n, done, doneUnits = count, d, du
	}
	c.n = n
	items := n
	if c.walk != nil {
		items += len(c.walk.subtrees)
	}
	c.prog = make([]progress.Event, items+1)
	skip := map[int]bool{}
	for _, k := range done {
		skip[k] = true
	}
	for _, k := range doneUnits {
		skip[n+k] = true
	}
	for k := range items {
		if !skip[k] {
			c.queue = append(c.queue, k)
		}
	}
	if len(skip) > 0 {
		msg := fmt.Sprintf("continuing the job recorded in the cluster: %d of %d shares were finished by an earlier run and are not redone", len(done), n)
		if c.walk != nil {
			msg += fmt.Sprintf(" (and %d of %d subtrees of its distributed walk)", len(doneUnits), len(c.walk.subtrees))
		}
		c.sink.Emit(progress.Event{Event: progress.KindNotice, Msg: msg})
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
	if !opt.DryRun && n > 1 {
		final.SplitShares = n
	}
	if c.walk != nil {
		// The final pass reads the expanded directories alone: their
		// entries, the subtrees' own attributes, the deletions among them.
		final.Unit = &wire.Unit{Dirs: wire.UnitDirs(c.walk.expanded), Shallow: true}
	}
	if !opt.DryRun {
		// The watch starts here, with the share queue ready: it reports
		// what changed since the agents were read, nothing is missed.
		wctx, stopWatch := context.WithCancel(ctx)
		var watches sync.WaitGroup
		defer watches.Wait()
		defer stopWatch()
		for _, side := range []*clusterSide{c.src, c.dst} {
			if side.Members != nil {
				watches.Add(1)
				go func() {
					defer watches.Done()
					c.watch(wctx, side)
				}()
			}
		}
		if err := c.shares(ctx); err != nil {
			return err
		}
	}

	// The final pass, on the first pair of survivors (again on others if
	// an agent of its pair leaves the cluster meanwhile).
	var (
		si, di int
		fs     progress.Summary
		before progress.Summary // what final passes cut short did
		err    error
	)
	for {
		var gone bool
		si, di, fs, gone, err = c.attempt(ctx, 0, 0, final, items, false)
		if !gone {
			break
		}
		addCounts(&before, fs)
	}
	addCounts(&fs, before)
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
	fs.DirsRead += sh.DirsRead + c.walked
	if fs.Proto == "" {
		fs.Proto, fs.ProtoReason = sh.Proto, sh.ProtoReason
	}
	fs.Agents = nil
	tally.Merge(fs)
	tally.Merge(c.units.Summary())
	c.mu.Lock()
	if err == nil {
		err = c.partial
	}
	c.mu.Unlock()
	if err == nil && !opt.DryRun && c.recording() {
		c.jobFailed(c.job.Finish(ctx))
	}
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
	for i, a := range c.src.Agents {
		ok, err := c.runner.SourceExists(ctx, a)
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
	for i, a := range c.dst.Agents {
		release, err := c.runner.Lock(ctx, a)
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

// shares runs the shares of the transfer: each pair of agents (and each
// agent that joins) takes shares from the queue until none is left,
// moving a share to survivors when an agent of its pair is lost.
func (c *cluster) shares(ctx context.Context) error {
	c.mu.Lock()
	for w := range c.pairs {
		c.startWorker(ctx, w%len(c.src.Agents), w%len(c.dst.Agents))
	}
	c.mu.Unlock()
	c.workers.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true // agents that join from now on find no share
	return c.err
}

// startWorker starts taking shares on the pair of agents (si, di), or
// survivors in their place, unless no share is left. c.mu is held.
func (c *cluster) startWorker(ctx context.Context, si, di int) bool {
	if c.stopped || len(c.queue) == 0 {
		return false
	}
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		for {
			c.mu.Lock()
			if c.stopped || len(c.queue) == 0 {
				c.mu.Unlock()
				return
			}
			k := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			if err := c.share(ctx, k, si, di); err != nil {
				c.mu.Lock()
				if c.err == nil {
					c.err = err
				}
				c.stopped = true
				c.mu.Unlock()
				return
			}
		}
	}()
	return true
}

// flight is a run in progress: its pair, and how to cancel it.
type flight struct {
	si, di int
	cancel context.CancelCauseFunc
}

// leftError cancels the runs of an agent that left the cluster.
type leftError struct{ addr string }

func (e *leftError) Error() string { return "agent " + e.addr + " left the cluster" }

// share runs share k of c.n on the pair (si, di) or survivors in their
// place, until it completes or no pair of survivors is left. Failures of
// single files are left to the final pass.
func (c *cluster) share(ctx context.Context, k, psi, pdi int) error {
	opt := c.opt
	opt.Lock, opt.Delete = false, false
	opt.Shard = &wire.Shard{Index: k, Count: c.n}
	opt = c.unitOpt(opt, k)
	if opt.BwLimit > 0 {
		// --bwlimit caps the whole transfer: the pairs run at once.
		opt.BwLimit = max((opt.BwLimit+int64(c.pairs)-1)/int64(c.pairs), 1024)
	}
	for attempt := 0; ; attempt++ {
		si, di, sum, gone, err := c.attempt(ctx, psi, pdi, opt, k, true)
		switch {
		case err == nil:
			if c.recording() && k < c.n {
				c.jobFailed(c.job.ShareDone(ctx, k, sum.FilesTransferred, sum.BytesSent))
			} else if c.recording() {
				c.jobFailed(c.job.UnitDone(ctx, k-c.n, sum.FilesTransferred, sum.BytesSent))
			}
			return nil // failed files are retried by the final pass
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case gone:
			continue // its agent is marked lost: survivors take the share
		case k >= c.n && c.partialUnit(err, sum):
			return nil // its failed files are reported; the others go on
		case !isAgentLoss(err):
			return err
		}
		if !c.markLost(ctx, si, di, err) && attempt >= max(c.opt.Retries, 0) {
			return err // both agents answer, yet the share keeps failing
		}
	}
}

// attempt runs opt once on the pair (psi, pdi) or survivors in their
// place, as share k (or the final pass, share false, k the number of
// shares), and credits what it did. gone reports that it failed because
// an agent of its pair left the cluster (that agent is marked lost).
func (c *cluster) attempt(ctx context.Context, psi, pdi int, opt wire.Options, k int, share bool) (si, di int, s progress.Summary, gone bool, err error) {
	si, di, err = c.pick(psi, pdi)
	if err != nil {
		return -1, -1, s, false, err // no pair to blame
	}
	rctx, id := c.track(ctx, si, di)
	t := progress.NewTally()
	err = c.runner.Run(rctx, c.addr(c.src, si), c.addr(c.dst, di), opt, c.progressSink(k, share && k < c.n), t)
	var left *leftError
	gone = err != nil && ctx.Err() == nil && errors.As(context.Cause(rctx), &left)
	c.untrack(id)
	s = t.Summary()
	c.credit(si, di, s, err == nil, share && k < c.n)
	if share && k >= c.n {
		c.creditUnit(s)
	}
	return si, di, s, gone, err
}

// recording reports whether the run records its job: it has one, and
// recording it has not failed (after a failure it stops trying, so that a
// lost etcd does not hold every share up).
func (c *cluster) recording() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.job != nil && !c.jobErr
}

// jobFailed says, once, that recording the job failed: the run goes on,
// and a rerun redoes what was not recorded.
func (c *cluster) jobFailed(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	said := c.jobErr
	c.jobErr = true
	c.mu.Unlock()
	if !said {
		c.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("%v; the run goes on (a rerun would redo the shares not recorded)", err)})
	}
}

// addCounts adds what s did to sum.
func addCounts(sum *progress.Summary, s progress.Summary) {
	sum.FilesTransferred += s.FilesTransferred
	sum.BytesTransferred += s.BytesTransferred
	sum.BytesSent += s.BytesSent
	sum.FilesDeleted += s.FilesDeleted
	sum.DirsCreated += s.DirsCreated
}

// track records a run on the pair (si, di) and returns its context, which
// an agent of the pair leaving cancels.
func (c *cluster) track(ctx context.Context, si, di int) (context.Context, int) {
	rctx, cancel := context.WithCancelCause(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	c.runs[c.nextID] = flight{si: si, di: di, cancel: cancel}
	return rctx, c.nextID
}

func (c *cluster) untrack(id int) {
	c.mu.Lock()
	f := c.runs[id]
	delete(c.runs, id)
	c.mu.Unlock()
	f.cancel(nil)
}

// watch follows side's membership until ctx ends: an agent that leaves
// is lost (its runs are cancelled and its shares move to survivors), one
// that joins takes shares still waiting.
func (c *cluster) watch(ctx context.Context, side *clusterSide) {
	err := side.Members.Watch(ctx, func(addr string) { c.left(side, addr) }, func(addr string) { c.joined(ctx, side, addr) })
	if err != nil && ctx.Err() == nil {
		c.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("%v; %s goes on with the agents it knows", err, side.Name)})
	}
}

// left marks the agent addr of side lost, if it is one of the run's, and
// cancels the runs it takes part in.
func (c *cluster) left(side *clusterSide, addr string) {
	c.mu.Lock()
	i := c.index(side, addr)
	c.mu.Unlock()
	if i < 0 {
		return
	}
	c.lose(side, i, errors.New("its registration in the cluster ended"))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.runs {
		if side == c.src && f.si == i || side == c.dst && f.di == i {
			f.cancel(&leftError{addr})
		}
	}
}

// joined adds the agent addr to side and starts it on the shares still
// waiting, paired with an agent of the other side.
func (c *cluster) joined(ctx context.Context, side *clusterSide, addr string) {
	c.mu.Lock()
	if c.index(side, addr) >= 0 {
		c.mu.Unlock()
		return // known (registered again), or lost for this run
	}
	i := len(side.Agents)
	side.Agents = append(side.Agents, addr)
	side.lost = append(side.lost, false)
	c.agents[addr] = progress.AgentStats{}
	si, di := i, i%len(c.dst.Agents)
	if side == c.dst {
		si, di = i%len(c.src.Agents), i
	}
	started := c.startWorker(ctx, si, di)
	c.mu.Unlock()
	msg := fmt.Sprintf("agent %s joined %s; it takes shares still waiting", addr, side.Name)
	if !started {
		msg = fmt.Sprintf("agent %s joined %s; no share is left for it", addr, side.Name)
	}
	c.sink.Emit(progress.Event{Event: progress.KindNotice, Msg: msg})
}

// index is the index of agent addr in side, -1 if it is none of its
// agents. c.mu is held.
func (c *cluster) index(side *clusterSide, addr string) int {
	for i, a := range side.Agents {
		if a == addr {
			return i
		}
	}
	return -1
}

// addr is the address of agent i of side.
func (c *cluster) addr(side *clusterSide, i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return side.Agents[i]
}

// pick returns the pair of surviving agents for a worker on the pair
// (si, di): those agents, or survivors in place of the lost ones.
func (c *cluster) pick(si, di int) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	si, err := c.src.survivor(si)
	if err != nil {
		return 0, 0, err
	}
	di, err = c.dst.survivor(di)
	if err != nil {
		return 0, 0, err
	}
	return si, di, nil
}

// survivor returns agent k if it is not lost, or a survivor in its place.
func (c *clusterSide) survivor(k int) (int, error) {
	var alive []int
	for i, l := range c.lost {
		if !l {
			alive = append(alive, i)
		}
	}
	if len(alive) == 0 {
		return 0, exitcode.Peerf("every agent of %s was lost (%s)", c.Name, strings.Join(c.Agents, ", "))
	}
	if !c.lost[k%len(c.Agents)] {
		return k % len(c.Agents), nil
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
		addr := c.addr(p.side, p.i)
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
	a := c.agents[side.Agents[i]]
	a.Lost = true
	c.agents[side.Agents[i]] = a
	c.mu.Unlock()
	if !already {
		c.sink.Emit(progress.Event{Event: progress.KindNotice,
			Msg: fmt.Sprintf("agent %s lost (%v); its work moves to the other agents", side.Agents[i], why)})
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
	for _, name := range []string{c.src.Agents[si], c.dst.Agents[di]} { // c.mu is held
		if name == "" {
			continue
		}
		a := c.agents[name]
		a.Bytes += bytes
		a.Files += s.FilesTransferred
		if name == c.src.Agents[si] {
			a.DirsRead += s.DirsRead
		}
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
	c.shared.DirsRead += s.DirsRead
	if s.Proto != "" && c.shared.Proto == "" {
		c.shared.Proto, c.shared.ProtoReason = s.Proto, s.ProtoReason
	}
}

// creditUnit adds what a run of a subtree unit did to the units' sums
// (its attempts cut short included: the final pass does not see their
// files).
func (c *cluster) creditUnit(s progress.Summary) {
	s.Agents, s.Proto, s.ProtoReason, s.ProtoChoice = nil, "", "", nil
	c.units.Merge(s)
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
