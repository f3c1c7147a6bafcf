package cmd

import (
	"os"

	"github.com/spf13/cobra"
)

// CommandTree builds xfer's complete command tree, including cobra's
// `completion` command (which Execute would add on its own), for
// tools/gendocs to render as Markdown pages, man pages and shell
// completion scripts. The document generator lives there, not here, so the
// shipped binary does not carry it.
func CommandTree() *cobra.Command {
	a := &app{stdout: os.Stdout, stderr: os.Stderr}
	root := newRootCmd(a)
	root.InitDefaultCompletionCmd()
	return root
}
