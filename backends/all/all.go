// Package all links every transport into the binary: import it for its
// side effects.
package all

import (
	_ "github.com/xfer-io/xfer/backends/tcp" // plain TCP
)
