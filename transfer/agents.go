package transfer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/cluster"
	"github.com/xfer-io/xfer/transfer/send"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// runCluster spreads a transfer over the agents of cluster remotes
// (transfer/cluster), running each pair's part as any other transfer.
func runCluster(ctx context.Context, src, dst Endpoint, opt wire.Options, dial session.DialOptions, sink progress.Sink, tally *progress.Tally) error {
	a := agentRunner{src: src, dst: dst, dial: dial, opt: opt}
	return cluster.Run(ctx, side(src), side(dst), opt, a, sink, tally)
}

// side is the cluster side of ep: its agents, "" for a local path.
func side(ep Endpoint) cluster.Side {
	s := cluster.Side{Name: ep.String(), Agents: ep.Agents, Members: ep.Members, Job: ep.Job}
	switch {
	case !ep.IsRemote():
		s.Agents = []string{""}
	case len(s.Agents) == 0:
		s.Agents = []string{ep.Addr}
	}
	return s
}

// agentRunner runs a cluster's work on endpoints (cluster.Runner).
type agentRunner struct {
	src, dst Endpoint
	dial     session.DialOptions
	opt      wire.Options
}

// at returns the endpoint of ep's agent addr.
func at(ep Endpoint, addr string) Endpoint {
	if ep.IsRemote() {
		ep.Addr = addr
		ep.Agents, ep.Members, ep.Job = nil, nil, nil
	}
	return ep
}

func (a agentRunner) Run(ctx context.Context, src, dst string, opt wire.Options, sink progress.Sink, tally *progress.Tally) error {
	return run(ctx, at(a.src, src), at(a.dst, dst), opt, a.dial, sink, tally)
}

// ListDir reads the source directory dir alone, where the source is: on
// agent src, or here for a local path.
func (a agentRunner) ListDir(ctx context.Context, src, dir string) ([]plan.Entry, bool, error) {
	if !a.src.IsRemote() {
		r, err := fsroot.Open(a.src.Path)
		if err != nil {
			return nil, false, nil // not a directory (or not one to walk): the run reports it
		}
		defer r.Close()
		if info, err := r.Lstat(dir); err != nil || info.Type != fsroot.TypeDir {
			return nil, false, nil
		}
		return drain(ctx, plan.NewShallowWalker(r, dir, 0))
	}
	ep := at(a.src, src)
	s, err := session.Dial(ctx, ep.Addr, ep.Auth.apply(a.dial))
	if err != nil {
		return nil, false, err
	}
	defer s.Close()
	d := send.NewRemote(s, 0)
	p := plan.Join(ep.Path, dir)
	if e, err := d.Stat(ctx, p); err != nil || e == nil || e.Type != plan.TypeDir {
		return nil, false, err
	}
	return drain(ctx, d.ListDir(ctx, p))
}

// drain reads the whole listing l: a directory's entries.
func drain(ctx context.Context, l plan.Lister) ([]plan.Entry, bool, error) {
	var entries []plan.Entry
	for {
		en, err := l.Next(ctx)
		if errors.Is(err, io.EOF) {
			return entries, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		entries = append(entries, en)
	}
}

func (a agentRunner) SourceExists(ctx context.Context, src string) (bool, error) {
	if !a.src.IsRemote() {
		_, err := os.Lstat(a.src.Path)
		return !errors.Is(err, fs.ErrNotExist), nil // other problems are the run's to report
	}
	ep := at(a.src, src)
	s, err := session.Dial(ctx, ep.Addr, ep.Auth.apply(a.dial))
	if err != nil {
		return false, err
	}
	defer s.Close()
	e, err := send.NewRemote(s, 0).Stat(ctx, ep.Path)
	return err != nil || e != nil, nil // a failed stat is the run's to report
}

func (a agentRunner) Lock(ctx context.Context, dst string) (func(), error) {
	if !a.dst.IsRemote() {
		h, err := openLocalDest(a.dst.Path, a.opt)
		if err != nil {
			return nil, err
		}
		if err := h.Mkroot("", a.dst.Path, true); err != nil {
			h.Close()
			return nil, err
		}
		return h.Close, nil
	}
	ep := at(a.dst, dst)
	s, err := session.Dial(ctx, ep.Addr, ep.Auth.apply(a.dial))
	if err != nil {
		return nil, err
	}
	if err := send.NewRemote(s, 0).Mkroot(ctx, ep.Path, true); err != nil {
		s.Close()
		return nil, err
	}
	return func() { s.Close() }, nil
}
