package uring

import "github.com/xfer-io/xfer/backends"

// The socket framing is shared by all socket transports (backends/frame.go).
const (
	prefixLen = backends.PrefixLen
	// MaxPayload is the largest payload one message may carry.
	MaxPayload = backends.MaxPayload
)

var (
	putPrefix   = backends.PutPrefix
	parsePrefix = backends.ParsePrefix
	checkSizes  = backends.CheckSizes
)
