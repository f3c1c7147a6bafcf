package cmd

import (
	"github.com/spf13/cobra"
)

func newCopyCmd(a *app) *cobra.Command {
	return a.transferCmd(&cobra.Command{
		Use:   "copy SRC DST",
		Short: "Copy files from SRC into DST, never deleting",
		Long: `Copy makes DST hold SRC's files: DST is a directory whose contents become
SRC's contents (created if missing); a single-file SRC lands inside DST.
Files that are already the same (by size and mtime, or by BLAKE3 with
--checksum) are skipped; nothing at DST is ever deleted.

Every chunk and every file is verified with BLAKE3, and a file appears
under its final name only once its data is verified and durable.`,
		Example: `  xfer copy ./results xfer://node1:7878/incoming
  xfer copy xfer://node1:7878/incoming/run1 ./local-copy
  xfer copy nodeA:/proj nodeB:/proj --dry-run
  xfer copy ./results ssh://me@host/~/incoming   # through ssh: see docs/ssh.md`,
	}, transferKind{})
}
