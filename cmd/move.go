package cmd

import (
	"github.com/spf13/cobra"
)

func newMoveCmd(a *app) *cobra.Command {
	return a.transferCmd(&cobra.Command{
		Use:   "move SRC DST",
		Short: "Move files from SRC into DST: copy, verify, then remove each source file",
		Long: `Move copies SRC into DST as copy does (every chunk and every file verified
with BLAKE3, each file under its final name only once durable), then
removes from SRC each file whose copy at DST is the same: by size and
mtime, or by BLAKE3 with --checksum. A file that failed to copy, or that
changed at SRC, stays at SRC; a move that fails or is interrupted leaves
every file on at least one side, and running it again finishes it.

Directories at SRC stay unless --delete-empty-src-dirs (never SRC
itself). Filters select what moves; what they exclude stays. A peer that
serves SRC read-only refuses the removals: the files are copied and stay.`,
		Example: `  xfer move ./results xfer://node1:7878/incoming
  xfer move xfer://node1:7878/outbox ./inbox --delete-empty-src-dirs
  xfer move ./logs ssh://me@host/archive --include '*.gz' --exclude '*' -n`,
	}, transferKind{move: true})
}
