package transfer

import "github.com/xfer-io/xfer/transfer/wire"

// The façade's names for what the wire defines, so that commands need
// only this package to run a transfer.

// Options tune a transfer; see wire.Options.
type Options = wire.Options

// Shard names one share of a cluster transfer; see wire.Shard.
type Shard = wire.Shard

// ProtocolVersion is the version of the protocol this build speaks.
const ProtocolVersion = wire.ProtocolVersion

// Defaults and limits of a transfer's options.
const (
	DefaultStreams        = wire.DefaultStreams
	DefaultChunkSize      = wire.DefaultChunkSize
	DefaultConnectTimeout = wire.DefaultConnectTimeout
	DefaultIdleTimeout    = wire.DefaultIdleTimeout
	DefaultRetries        = wire.DefaultRetries
	DefaultCheckers       = wire.DefaultCheckers
	DefaultTransfers      = wire.DefaultTransfers
	MaxTransfers          = wire.MaxTransfers
	MaxChunkSize          = wire.MaxChunkSize
	MaxShards             = wire.MaxShards
)
