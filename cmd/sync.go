package cmd

import (
	"math"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/watch"
)

func newSyncCmd(a *app) *cobra.Command {
	c := a.transferCmd(&cobra.Command{
		Use:   "sync SRC DST",
		Short: "Make DST match SRC, deleting extra files at DST",
		Long: `Sync makes DST match SRC: new and changed files are transferred, entries
whose type changed are replaced, and entries at DST that SRC lacks are
deleted (--delete, on by default for sync; --delete=false keeps them).
Deletions happen after all transfers, and not at all if any transfer
failed.

Two guards refuse the deletions, all of them, with exit code 5 (the
transfers are still made): more deletions than --max-delete N allows, and
an empty SRC (nothing in it, or nothing that the filters select) into a
DST that has entries, unless --allow-empty-source is given. A missing SRC
is always refused, before anything changes (exit 2).

Remote to remote syncs are third-party transfers: the source server pushes
straight to the destination server.`,
		Example: `  xfer sync xfer://node1:7878/incoming ./mirror --delete
  xfer sync nodeA:/proj nodeB:/proj`,
	}, transferKind{sync: true})
	c.Flags().Bool("delete", true, "delete entries at DST that SRC does not have")
	intFlag(c.Flags(), "max-delete", -1, -1, math.MaxInt, "if the sync would delete more than this many entries at DST, delete none of them (files are still transferred) and exit 5 (-1: no limit)")
	c.Flags().Bool("allow-empty-source", false, "let a sync from an empty SRC delete everything at DST (refused with exit 5 otherwise)")
	c.Flags().Bool("delete-excluded", false, "also delete entries at DST that the filters exclude (as rsync; implies --delete, and is refused with --delete=false)")
	c.Flags().Bool("watch", false, "after the first pass keep DST in step: watch SRC (inotify) and sync again after each burst of changes, falling back to periodic rescans (see docs/watch.md)")
	c.Flags().Duration("watch-debounce", watch.DefaultDebounce, "with --watch: quiet time after the last change before syncing")
	c.Flags().Duration("watch-rescan", 0, "with --watch: also sync this often even without notifications (0: only after a notification overflow)")
	return c
}
