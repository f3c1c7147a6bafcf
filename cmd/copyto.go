package cmd

import (
	"github.com/spf13/cobra"
)

func newCopytoCmd(a *app) *cobra.Command {
	return a.transferCmd(&cobra.Command{
		Use:   "copyto SRC DST",
		Short: "Copy SRC to the name DST: one file under another name, or a directory as copy",
		Long: `Copyto copies SRC to DST itself, as rclone copyto: a file SRC becomes the
file DST (its directory created if missing), under DST's name whatever
SRC's is; a directory SRC is copied as copy does, its contents becoming
DST's. Files that are already the same are skipped; nothing is deleted.`,
		Example: `  xfer copyto ./report.pdf xfer://node1:7878/archive/2026-12.pdf
  xfer copyto xfer://node1:7878/data/latest.tar ./backup.tar`,
	}, transferKind{to: true})
}

func newMovetoCmd(a *app) *cobra.Command {
	return a.transferCmd(&cobra.Command{
		Use:   "moveto SRC DST",
		Short: "Move SRC to the name DST: copy, verify, then remove the source",
		Long: `Moveto is copyto followed by move's removal, as rclone moveto: a file SRC
becomes the file DST and, once its copy is verified (or found the same),
SRC is removed; a directory SRC is moved as move does, its contents
becoming DST's.`,
		Example: `  xfer moveto ./upload.part xfer://node1:7878/incoming/upload.bin
  xfer moveto xfer://node1:7878/outbox/a.log ./archive/a-1.log`,
	}, transferKind{move: true, to: true})
}
