package transfer

import (
	"context"

	"github.com/xfer-io/xfer/transfer/cluster"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// The façade's names for what the wire defines, so that commands need
// only this package to run a transfer.

// Options tune a transfer; see wire.Options.
type Options = wire.Options

// OwnersMode says whether a transfer keeps owners and groups; see
// wire.OwnersMode.
type OwnersMode = wire.OwnersMode

// CutoffMode says how --max-transfer stops a run; see wire.CutoffMode.
type CutoffMode = wire.CutoffMode

// Shard names one share of a cluster transfer; see wire.Shard.
type Shard = wire.Shard

// Membership reports the agents of a cluster that leave or join during a
// run; see cluster.Membership.
type Membership = cluster.Membership

// Job is the record of a cluster transfer kept in the cluster; see
// cluster.Job.
type Job = cluster.Job

// JobPlan is what a cluster run tells its Job it would do; see
// cluster.JobPlan.
type JobPlan = cluster.JobPlan

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

// Sessions, for commands that talk to a peer's services directly (the
// store, the benchmark, the daemon's peers).
type (
	// Session is one authenticated connection to a peer.
	Session = session.Session
	// DialOptions tune how a session is opened.
	DialOptions = session.DialOptions
	// LostError means an established session ended unexpectedly.
	LostError = session.LostError
	// BusyError is a server's refusal for now, with the wait it asks for.
	BusyError = session.BusyError
	// Export is a named tree a server offers, in the manner of rsync
	// modules.
	Export = receive.Export
)

// Dial opens a session to the xfer server at addr.
func Dial(ctx context.Context, addr string, o DialOptions) (*Session, error) {
	return session.Dial(ctx, addr, o)
}

// Server limits' defaults (see `xfer serve --help`).
const (
	DefaultMaxSessions            = session.DefaultMaxSessions
	DefaultMaxSessionsPerClient   = session.DefaultMaxSessionsPerClient
	DefaultMaxHandshakes          = session.DefaultMaxHandshakes
	DefaultMaxHandshakesPerClient = session.DefaultMaxHandshakesPerClient
	DefaultHandshakeTimeout       = session.DefaultHandshakeTimeout
	DefaultMaxOpenFiles           = session.DefaultMaxOpenFiles
	DefaultMaxSessionMemory       = session.DefaultMaxSessionMemory
	DefaultMaxMemory              = session.DefaultMaxMemory
)
