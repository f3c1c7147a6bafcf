package wire

// FrameStdio is the first frame `xfer serve --stdio` writes on its
// standard output, before the session's hello: it says which protocol the
// far side speaks, where it accepts this run's data streams and the
// one-time token that admits them.
const FrameStdio byte = 7

// StdioHello is the payload of FrameStdio. It crosses the ssh channel
// only, so the token is as secret as that channel.
type StdioHello struct {
	Proto   string `json:"proto"`   // "xfer-stdio"
	Version int    `json:"version"` // ProtocolVersion of the far side
	Server  string `json:"server,omitempty"`
	// DataAddr is host:port of the far side's listener for this run's
	// data streams and third-party sessions, or with DataNet "unix" the
	// path of its Unix socket (reachable only through ssh relays).
	DataAddr string `json:"data_addr"`
	DataNet  string `json:"data_net,omitempty"` // "tcp" (the default) or "unix"
	// Token (hex) is the random secret this serve --stdio process requires
	// of every session; it lives as long as the process.
	Token string `json:"token"`
}

func (StdioHello) message() {}
