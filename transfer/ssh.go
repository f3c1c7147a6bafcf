package transfer

import (
	"context"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/protoprobe"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/sshconn"
	"github.com/xfer-io/xfer/transfer/wire"
)

// SSH is how to reach the far side of an ssh:// endpoint: the account,
// and how to start `xfer serve --stdio` there.
type SSH struct {
	Target  sshconn.Target
	Options sshconn.Options
}

// sameTree reports whether a and b name the same served tree.
func sameTree(a, b Endpoint) bool {
	if a.SSH != nil || b.SSH != nil {
		return a.SSH != nil && b.SSH != nil && a.SSH.Target == b.SSH.Target && a.SSH.Options.Root == b.SSH.Options.Root
	}
	return a.Addr == b.Addr
}

// dialPeer opens a session to the peer ep names: a served peer by TCP, or
// an ssh endpoint's far side, started for the session and ended with it.
// far is nil for a served peer.
func dialPeer(ctx context.Context, ep Endpoint, o session.DialOptions) (s *session.Session, far *sshconn.Far, err error) {
	if ep.SSH == nil {
		s, err = session.Dial(ctx, ep.Addr, ep.Auth.apply(o))
		return s, nil, err
	}
	so := ep.SSH.Options
	so.Timeout = o.ConnectTimeout
	far, err = sshconn.Start(ctx, ep.SSH.Target, so)
	if err != nil {
		return nil, nil, err
	}
	o.Conn, o.DialData, o.Token, o.TLS = far.Conn(), far.DialData, far.Token(), nil
	if o.Proto == "" || o.Proto == "auto" {
		// Inline streams are Unix sockets to ssh: only tcp carries them,
		// and a direct stream may fall back to inline.
		o.Proto = "tcp"
	}
	s, err = session.Dial(ctx, ep.SSH.Target.String(), o)
	if err != nil {
		far.Close()
		return nil, nil, err
	}
	s.OnClose(func() { far.Close() })
	return s, far, nil
}

// dialData is dialPeer for a session that carries the run's data. To a
// served peer with --proto auto, the transport is chosen by measurement
// (see transfer/protoprobe); the transport and how it was chosen go into
// the tally. Under --bwlimit nothing is measured (every transport would
// meet the cap, and a probe must not burst past it), nor for a dry run.
func dialData(ctx context.Context, ep Endpoint, o session.DialOptions, opt wire.Options, tally *progress.Tally) (*session.Session, error) {
	if ep.SSH != nil {
		s, far, err := dialPeer(ctx, ep, o)
		if err != nil {
			return nil, err
		}
		tally.SetProto(s.Transport(), s.TransportReason())
		noteSSH(tally, far)
		return s, nil
	}
	po := protoprobe.Options{Cache: protoprobe.DefaultCache()}
	switch {
	case opt.DryRun:
		po.Skip = "a dry run moves no data"
	case opt.BwLimit > 0:
		po.Skip = "--bwlimit caps the rate"
	}
	s, choice, err := protoprobe.Dial(ctx, ep.Addr, ep.Auth.apply(o), po)
	if err != nil {
		return nil, err
	}
	tally.SetProto(s.Transport(), s.TransportReason())
	tally.SetProtoChoice(choice)
	return s, nil
}

// noteSSH records in the summary how the data of a session to far
// travels (nothing for a served peer).
func noteSSH(tally *progress.Tally, far *sshconn.Far) {
	if far != nil {
		tally.SetSSHData(far.DataPath())
	}
}
