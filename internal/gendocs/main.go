// Command gendocs writes the files generated from xfer's cobra command
// tree: the shell completion scripts under completions/, one Markdown page
// per command under docs/cli/ and one man page per command under docs/man/.
// `make generate` (go generate ./...) runs it from this directory:
//
//	go run -ldflags=-checklinkname=0 ./internal/gendocs -out .
//
// It is a separate program so the shipped xfer binary does not carry the
// document generators. The test beside it fails when a committed generated
// file is stale.
package main

//go:generate go run -ldflags=-checklinkname=0 . -out ../..

import (
	"flag"
	"fmt"
	"os"

	"github.com/xfer-io/xfer/cmd"
)

func main() {
	out := flag.String("out", ".", "repository root under which completions/, docs/cli/ and docs/man/ are written")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs [-out DIR]")
		os.Exit(2)
	}
	if err := generate(cmd.CommandTree(), *out); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
