package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/wire"
)

// UnitsPerPair is how many units of the distributed walk the coordinator
// aims at per agent pair: it reads directories one at a time (expands
// them) until that many subtrees wait, so that a big tree is split and a
// pair that is done early takes another subtree.
const UnitsPerPair = 4

// MaxExpand bounds the directories the coordinator expands (reads one at
// a time) before it hands out what waits as subtrees.
const MaxExpand = 256

// ShareMinBytes: the files directly in the expanded directories are
// spread over shares (as the whole tree's are without the distributed
// walk) when they weigh at least this much; lighter ones are the final
// pass's, which spares every share a read of those directories.
const ShareMinBytes = 4 << 20

// walkPlan is how the distributed walk cuts a tree: the directories the
// coordinator expanded (read alone by the shares and by the final pass)
// and the subtrees beneath them (one unit each).
type walkPlan struct {
	expanded []string
	subtrees []string
	// bytes is what the regular files directly in expanded weigh
	bytes int64
}

// walkOff says why the distributed walk cannot take opt ("": it can), as
// the option a notice names.
func walkOff(opt wire.Options) string {
	switch {
	case opt.HardLinks:
		return "--hard-links (a file's names may lie in different units)"
	case opt.MaxDelete != nil:
		return "--max-delete (counted over the whole tree)"
	case opt.Filter != nil:
		return "filters (rules that see the whole tree)"
	case opt.BackupDir != "":
		return "--backup-dir"
	}
	return ""
}

// digest identifies the cut: a job's record holds it, so that a rerun
// that cuts the tree otherwise starts the job afresh.
func (p *walkPlan) digest() string {
	h := sha256.New()
	for _, d := range p.expanded {
		fmt.Fprintf(h, "e%d:%s", len(d), d)
	}
	for _, d := range p.subtrees {
		fmt.Fprintf(h, "s%d:%s", len(d), d)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// expand reads the tree's top directories one at a time on the source
// agents (breadth first, in order) until UnitsPerPair subtrees per pair
// wait or none is left. ok false: the top is not a directory that could
// be read, and the run walks as before.
func (c *cluster) expand(ctx context.Context) (p walkPlan, ok bool, err error) {
	queue := []string{""}
	for i := 0; len(queue) > 0 && len(queue) < UnitsPerPair*c.pairs && len(p.expanded) < MaxExpand; i++ {
		d := queue[0]
		queue = queue[1:]
		entries, isDir, err := c.listDir(ctx, i, d)
		if err != nil {
			return p, false, err
		}
		if !isDir {
			if d == "" {
				return p, false, nil // one file, or a link to follow: no walk to share
			}
			continue // gone or replaced since its parent was read: the final pass sees it
		}
		p.expanded = append(p.expanded, d)
		for _, e := range entries {
			switch e.Type {
			case plan.TypeDir:
				queue = append(queue, plan.Join(d, e.Path))
			case plan.TypeFile:
				p.bytes += e.Size
			}
		}
	}
	p.subtrees = queue
	return p, true, nil
}

// listDir reads directory d of the source alone, on source agent i (or
// survivors in its place), and counts the read as that agent's.
func (c *cluster) listDir(ctx context.Context, i int, d string) ([]plan.Entry, bool, error) {
	for {
		c.mu.Lock()
		si, err := c.src.survivor(i)
		c.mu.Unlock()
		if err != nil {
			return nil, false, err
		}
		addr := c.addr(c.src, si)
		entries, isDir, err := c.runner.ListDir(ctx, addr, d)
		if err == nil {
			c.mu.Lock()
			if addr != "" {
				a := c.agents[addr]
				a.DirsRead++
				c.agents[addr] = a
			}
			c.walked++
			c.mu.Unlock()
			return entries, isDir, nil
		}
		if !isAgentLoss(err) || !c.markLost(ctx, si, -1, err) {
			return nil, false, fmt.Errorf("reading source directory %s: %w", displayDir(d), err)
		}
	}
}

func displayDir(d string) string {
	if d == "" {
		return "."
	}
	return d
}

// unitOpt is opt for work item k of the run: a share of the files
// directly in the expanded directories, or the subtree unit k-n.
func (c *cluster) unitOpt(opt wire.Options, k int) wire.Options {
	if k < c.n {
		if c.walk != nil {
			opt.Unit = &wire.Unit{Dirs: wire.UnitDirs(c.walk.expanded), Shallow: true}
		}
		return opt
	}
	opt.Shard = nil
	opt.Delete = c.opt.Delete
	// The source is not empty: the subtree's directory is in it.
	opt.AllowEmptySource = true
	opt.Unit = &wire.Unit{Dirs: wire.UnitDirs(c.walk.subtrees[k-c.n : k-c.n+1])}
	return opt
}

// walkNotice is the line that says the distributed walk is off, and why.
func walkNotice(why string) string {
	return fmt.Sprintf("the distributed walk is off for %s: every share walks the whole tree", strings.TrimSpace(why))
}

// partialUnit keeps the first failure of a unit whose run ended with
// failed files (sum counts them) and not because an agent went away: the
// other units go on, and the run ends with it (exit code 1), as a whole
// run does. It reports whether err was that.
func (c *cluster) partialUnit(err error, sum progress.Summary) bool {
	if sum.Errors == 0 || isAgentLoss(err) || exitcode.Code(err) != exitcode.Partial {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial == nil {
		c.partial = err
	}
	return true
}
