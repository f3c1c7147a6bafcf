package cmd

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/transfer"
)

// The dial flags say how a command reaches a peer: --proto, --streams,
// --connect-timeout, --timeout, --uring-entries and the client's
// --token-file and --tls-* flags. Every command that calls a peer (copy,
// sync, bench, the cas commands, daemon) declares them with addDialFlags
// and reads them with a.dialOptions, so that a flag has one name, one range
// and one meaning wherever it appears.

// dialFlagSpec is what differs between commands in the dial flags' help
// and defaults; their names, ranges and parsing are the same everywhere.
type dialFlagSpec struct {
	protos       []string // the words --proto takes
	protoUsage   string
	streams      int // --streams default
	streamsUsage string
	peer         string // "a peer" or "the peer", in --connect-timeout's help
}

// addDialFlags declares the dial flags of c.
func addDialFlags(c *cobra.Command, s dialFlagSpec) {
	f := c.Flags()
	choiceFlag(f, "proto", "auto", s.protos, s.protoUsage)
	intFlag(f, "streams", s.streams, 1, 64, s.streamsUsage)
	durationFlag(f, "connect-timeout", transfer.DefaultConnectTimeout, 1, "give up connecting to "+s.peer+" after this long (above 0)")
	durationFlag(f, "timeout", transfer.DefaultIdleTimeout, 1, "give up on a peer that stays silent this long (above 0)")
	uringFlag(f)
	addPeerAuthFlags(c)
}

// uringFlag declares --uring-entries, which IOURING_ENTRIES (the mover
// service's name for it) also sets. The dial flags include it; serve,
// which dials other servers for third-party jobs, declares it alone.
func uringFlag(f *pflag.FlagSet) {
	intFlag(f, "uring-entries", 0, 0, maxUringEntries, "io_uring ring size for the uring transport, up to 32768 (0: the default, 256; IOURING_ENTRIES also sets it)")
	f.SetAnnotation("uring-entries", envAliasAnnotation, []string{"IOURING_ENTRIES"})
}

// uringEntries is --uring-entries (IOURING_ENTRIES sets it too).
func (a *app) uringEntries() int { return a.v.GetInt("uring-entries") }

// dialOptions reads the dial flags of the invoked command into how to
// dial a peer that authenticates as pa says.
func (a *app) dialOptions(pa transfer.PeerAuth) (transfer.DialOptions, error) {
	o := transfer.DialOptions{
		Proto:          a.v.GetString("proto"),
		Streams:        a.v.GetInt("streams"),
		ConnectTimeout: a.v.GetDuration("connect-timeout"),
		IdleTimeout:    a.v.GetDuration("timeout"),
		UringEntries:   a.uringEntries(),
		Log:            a.log,
		ClientVersion:  versionString(),
		Token:          pa.Token,
		TLS:            pa.TLS,
		TLSData:        pa.TLSData,
	}
	if o.Streams < 1 || o.Streams > 64 {
		return transfer.DialOptions{}, exitcode.Usagef("--streams: want 1 to 64, got %d", o.Streams)
	}
	return o, nil
}

// serverDialOptions is how a server (serve, daemon --listen) dials other
// servers on behalf of its clients, logging to log.
func (a *app) serverDialOptions(log *slog.Logger) transfer.DialOptions {
	return transfer.DialOptions{Log: log, ClientVersion: versionString(), UringEntries: a.uringEntries()}
}

// aliasOfAnnotation marks a flag that is a deprecated name of the flag it
// lists: both share one value, and settle treats them as one setting.
const aliasOfAnnotation = "xfer_alias_of"

// deprecatedAlias declares old as a deprecated name of c's flag name (the
// daemon's --iouring-entries for --uring-entries): the same value, hidden
// from help, and pflag's notice "Flag --OLD has been deprecated, use
// --NAME instead" on stderr (w) when the command line uses it. XFER_<OLD>
// and the config key old still set it, with a notice of their own (see
// settle).
func deprecatedAlias(c *cobra.Command, w io.Writer, old, name string) {
	f := c.Flags()
	nf := f.Lookup(name)
	f.Var(nf.Value, old, nf.Usage)
	f.SetAnnotation(old, aliasOfAnnotation, []string{name})
	f.MarkDeprecated(old, "use --"+name+" instead")
	// cobra prints pflag's notices on the command's output, which run
	// sets to stdout; a notice belongs on stderr, with the other
	// messages. pflag writes nothing else there (cobra parses with
	// ContinueOnError and renders usage itself).
	if w != nil {
		f.SetOutput(w)
	}
}
