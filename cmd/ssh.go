package cmd

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/location"
	"github.com/xfer-io/xfer/transfer"
	"github.com/xfer-io/xfer/transfer/sshconn"
)

// addSSHFlags declares how copy and sync reach ssh:// locations.
func addSSHFlags(f *pflag.FlagSet) {
	f.String("ssh-command", "ssh", "ssh program and options for ssh:// locations, split as a shell would, without expansion (e.g. \"ssh -i KEY -o StrictHostKeyChecking=yes\")")
	f.String("xfer-path", "xfer", "the xfer binary on the far side of ssh:// locations, as rsync's --rsync-path")
	choiceFlag(f, "ssh-data", sshconn.DataAuto, []string{sshconn.DataAuto, sshconn.DataDirect, sshconn.DataInline},
		"how data reaches ssh:// locations: auto (TCP straight to the far side, else inside ssh), direct (TCP only) or inline (inside ssh only)")
}

// sshEndpoint is the endpoint of an ssh:// location (or remote).
func (a *app) sshEndpoint(l location.Location) (transfer.Endpoint, error) {
	command, err := sshconn.SplitCommand(a.v.GetString("ssh-command"))
	if err != nil {
		return transfer.Endpoint{}, exitcode.Usagef("--ssh-command %q: %v", a.v.GetString("ssh-command"), err)
	}
	t := l.Remote.SSH
	root, p := t.Root, l.Path
	if l.Remote.Name != "" && p != "" {
		// NAME:SUB is SUB beneath the remote's directory; the far side
		// serves the top of that so that SUB may be a file.
		root, p = strings.TrimSuffix(root, "/")+"/"+p, ""
		if dir, base := splitLast(root); base != "" {
			root, p = dir, base
		}
	}
	return transfer.Endpoint{Path: p, SSH: &transfer.SSH{
		Target: sshconn.Target{User: t.User, Host: t.Host, Port: t.Port},
		Options: sshconn.Options{Command: command, XferPath: a.v.GetString("xfer-path"), Root: root,
			Data: a.v.GetString("ssh-data")},
	}}, nil
}

// splitLast splits a remote directory into its parent and last name ("" for
// "/" and "~").
func splitLast(dir string) (string, string) {
	i := strings.LastIndexByte(dir, '/')
	if i < 0 || dir == "/" {
		return dir, ""
	}
	parent := dir[:i]
	if parent == "" {
		parent = "/"
	}
	return parent, dir[i+1:]
}

// stdioRoot expands the --root of `serve --stdio`: "~" and "~/DIR" are in
// the remote user's home directory, and a relative path is too (ssh starts
// commands there).
func stdioRoot(root string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", exitcode.Usagef("serve --stdio: no home directory for %q: %v", root, err)
	}
	switch {
	case root == "" || root == "~":
		return home, nil
	case strings.HasPrefix(root, "~/"):
		return filepath.Join(home, root[2:]), nil
	case !filepath.IsAbs(root):
		return filepath.Join(home, root), nil
	}
	return root, nil
}

// serveStdio runs srv for one session on standard input and output, with
// ln for its data streams and third-party sessions.
func (a *app) serveStdio(ctx context.Context, srv *transfer.Server, ln net.Listener, token []byte) error {
	ctx, stop := stdioSignals(ctx)
	defer stop()
	return sshconn.ServeStdio(ctx, os.Stdin, os.Stdout, ln, sshconn.Announce(ln, versionString(), token), srv.Serve)
}

// stdioSignals returns a context that SIGHUP or SIGPIPE ends: the far
// side of an ssh:// run outlives neither its ssh connection nor a write to
// its closed standard output, and returns (closing its data listener and
// removing its socket directory) instead of being killed by them. Go
// kills a program on SIGPIPE from standard output unless it is notified.
func stdioSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// stdioToken is the one-run secret of `serve --stdio`.
func stdioToken() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
