package transfer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// PushPolicy restricts the servers a server pushes to for third-party jobs
// (`xfer serve --push-allow`). A nil policy allows any destination: every
// third-party job must carry a ticket the destination issued, so a server
// that did not issue one refuses the session before anything is written.
type PushPolicy struct {
	none  bool
	nets  []netip.Prefix   // CIDR and bare IP entries: any port
	ips   []netip.AddrPort // IP:PORT entries
	names []string         // HOST:PORT entries with a host name, as the job names it
}

// errPushRefused is the cause of a destination the policy does not allow.
var errPushRefused = errors.New("not allowed by this server's --push-allow")

// ParsePushAllow parses --push-allow entries: CIDR (10.0.0.0/8), IP (any
// port), IP:PORT, HOST:PORT (matched as the job names the destination), or
// the single word none (no third-party pushes at all).
func ParsePushAllow(entries []string) (*PushPolicy, error) {
	p := &PushPolicy{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case e == "none":
			if len(entries) != 1 {
				return nil, fmt.Errorf("--push-allow none goes alone")
			}
			p.none = true
		case strings.Contains(e, "/"):
			pf, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("--push-allow %q: not a CIDR range", e)
			}
			p.nets = append(p.nets, pf.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				p.nets = append(p.nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			host, port, err := net.SplitHostPort(e)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("--push-allow %q: want CIDR, IP, IP:PORT, HOST:PORT or none", e)
			}
			if ip, err := netip.ParseAddr(host); err == nil {
				n, _ := strconv.Atoi(port)
				p.ips = append(p.ips, netip.AddrPortFrom(ip.Unmap(), uint16(n)))
				continue
			}
			p.names = append(p.names, strings.ToLower(host)+":"+port)
		}
	}
	if !p.none && len(p.nets)+len(p.ips)+len(p.names) == 0 {
		return nil, fmt.Errorf("--push-allow: no entries")
	}
	return p, nil
}

// vet decides whether a job may push to addr (host:port as the job names
// it). It returns the check to run on every address a connection is made
// to (nil: any), so that what a name resolves to is checked where the
// connection is made, not before.
func (p *PushPolicy) vet(addr string) (func(network, address string, c syscall.RawConn) error, error) {
	if p == nil {
		return nil, nil
	}
	if p.none {
		return nil, fmt.Errorf("this server pushes to no other server (--push-allow none)")
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		for _, n := range p.names {
			if n == strings.ToLower(host)+":"+port {
				return nil, nil
			}
		}
	}
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return errPushRefused
		}
		ip := ap.Addr().Unmap()
		for _, n := range p.nets {
			if n.Contains(ip) {
				return nil
			}
		}
		for _, a := range p.ips {
			if a.Addr() == ip && a.Port() == ap.Port() {
				return nil
			}
		}
		return errPushRefused
	}, nil
}
