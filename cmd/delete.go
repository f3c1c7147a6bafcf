package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/ui"
)

func newDeleteCmd(a *app) *cobra.Command {
	c := a.removalCmd(&cobra.Command{
		Use:   "delete PATH",
		Short: "Remove the files at PATH, keeping directories (filters apply)",
		Long: `Delete removes the files (and symlinks) at PATH and beneath it that the
filters select, as rclone delete: directories stay unless --rmdirs,
which also removes those left empty (never PATH itself). A single file
PATH is removed alone. A peer that serves its tree read-only refuses.`,
		Example: `  xfer delete ./scratch --include '*.tmp' --exclude '*'
  xfer delete xfer://node1:7878/incoming/old --rmdirs -n`,
	}, false)
	c.Flags().Bool("rmdirs", false, "also remove the directories left empty (never PATH itself)")
	addFilterFlags(c.Flags())
	return c
}

func newPurgeCmd(a *app) *cobra.Command {
	return a.removalCmd(&cobra.Command{
		Use:   "purge PATH",
		Short: "Remove PATH and everything beneath it",
		Long: `Purge removes the directory PATH with everything beneath it (or the file
PATH), as rclone purge; filters do not apply. It refuses "/" and the
root a peer serves (name a directory beneath it), and a peer that serves
its tree read-only refuses.`,
		Example: `  xfer purge ./build/tmp
  xfer purge xfer://node1:7878/incoming/run1 -n`,
	}, true)
}

// removalCmd makes c delete (purge false) or purge: one location, the
// dial flags, -n and --json.
func (a *app) removalCmd(c *cobra.Command, purge bool) *cobra.Command {
	c.Args = usageArgs(cobra.ExactArgs(1))
	c.ValidArgsFunction = completeLocations
	c.RunE = func(cmd *cobra.Command, args []string) error { return a.runRemoval(cmd, args[0], purge) }
	f := c.Flags()
	addDialFlags(c, dialFlagSpec{
		protos: protoWords, protoUsage: "data transport to ask the peer for: auto, tcp, tcp-zc, uring or rdma (a removal sends no data)",
		streams: 1, streamsUsage: "data streams per peer (a removal needs none)", peer: "a peer",
	})
	addSSHFlags(f)
	intFlag(f, "checkers", transfer.DefaultCheckers, 1, plan.MaxCheckers, "directories the walk lists and stats at once")
	f.BoolP("dry-run", "n", false, "print what would be removed; remove nothing")
	return c
}

// runRemoval is delete and purge.
func (a *app) runRemoval(cmd *cobra.Command, arg string, purge bool) error {
	ep, err := a.endpointOf(arg)
	if err != nil {
		return err
	}
	if len(ep.Agents) > 1 {
		ep.Agents = nil // the agents of a cluster show the same tree: one does
	}
	do, err := a.dialOptions(transfer.PeerAuth{})
	if err != nil {
		return err
	}
	opt := transfer.RemoveOptions{DryRun: a.v.GetBool("dry-run"), Checkers: a.v.GetInt("checkers")}
	run := transfer.Purge
	if !purge {
		run = transfer.Delete
		opt.RmDirs = a.v.GetBool("rmdirs")
		if opt.Filter, err = a.filterOptions(cmd); err != nil {
			return err
		}
	}
	po := a.printerOptions(opt.DryRun)
	po.Removal = true
	printer := ui.New(po)
	sum, err := run(cmd.Context(), ep, opt, do, printer)
	var partial *transfer.PartialError
	switch {
	case err == nil:
	case errors.As(err, &partial):
		sum.ExitCode = exitcode.Partial
	default:
		printer.Emit(progress.Event{Event: progress.KindError, Error: userMessage(err)})
		sum.Errors++
		sum.ExitCode = exitcode.Code(err)
	}
	printer.Finish(sum)
	if err != nil {
		return fmt.Errorf("%w (%w)", silent(sum.ExitCode), err)
	}
	return nil
}

// endpointOf is the endpoint of the location arg, named remotes and all.
func (a *app) endpointOf(arg string) (transfer.Endpoint, error) {
	remotes, err := a.remotes()
	if err != nil {
		return transfer.Endpoint{}, err
	}
	return a.endpoint(arg, remotes)
}
