// Package all links every transport into the binary: import it for its
// side effects. The rdma transport is real only in builds with the rdma
// tag (cgo + UCX); without it, it registers a stub that says how to get it.
package all

import (
	_ "github.com/xfer-io/xfer/backends/rdma"  // UCX (rdma build tag)
	_ "github.com/xfer-io/xfer/backends/tcp"   // plain TCP
	_ "github.com/xfer-io/xfer/backends/tcpzc" // sendfile/splice/MSG_ZEROCOPY
	_ "github.com/xfer-io/xfer/backends/uring" // io_uring
)
