// Command xfer moves data between nodes and clusters: chunked, parallel,
// blake3-verified copies and syncs over the fastest transport both ends support.
package main

import (
	"os"

	"github.com/xfer-io/xfer/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
