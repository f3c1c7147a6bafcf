package cmd

import (
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/exitcode"
	"github.com/xfer-io/xfer/fsroot"
	"github.com/xfer-io/xfer/transfer"
)

func newServeCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve --root DIR [--listen HOST:PORT]",
		Short: "Serve a directory tree to xfer peers",
		Long: `Serve runs the xfer peer on a node that holds data: clients copy and sync
to and from the tree beneath --root, and ask it to push to other servers
(third-party transfers). Every path a client names is confined beneath the
root. It prints "listening on HOST:PORT" on stderr once it accepts
connections (with port 0 the kernel picks a free port) and stops cleanly on
SIGINT or SIGTERM.`,
		Example: `  xfer serve --listen 127.0.0.1:7878 --root /data`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runServe(cmd)
		},
	}
	f := c.Flags()
	f.String("listen", "127.0.0.1:7878", "address to listen on (HOST:PORT; port 0 picks a free port)")
	f.String("root", "", "directory to serve (required)")
	f.StringSlice("protos", nil, "transports to offer, in any order (default: every usable one)")
	f.Bool("no-fsync", false, "do not flush received files to stable storage (scratch data only)")
	f.Duration("timeout", transfer.DefaultIdleTimeout, "drop a peer that stays silent this long")
	return c
}

func (a *app) runServe(cmd *cobra.Command) error {
	rootDir := a.v.GetString("root")
	if rootDir == "" {
		return exitcode.Usagef("--root is required")
	}
	protos := a.v.GetStringSlice("protos")
	for _, p := range protos {
		if !backends.Known(p) {
			return exitcode.Usagef("--protos: unknown transport %q (want tcp, tcp-zc, uring or rdma)", p)
		}
	}
	root, err := fsroot.Open(rootDir)
	if err != nil {
		return exitcode.Usagef("--root %s: %v", rootDir, err)
	}
	defer root.Close()
	addr := a.v.GetString("listen")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return exitcode.Usagef("listen on %s: %v", addr, err)
	}
	srv := transfer.NewServer(transfer.ServerConfig{
		Root:        root,
		Protos:      protos,
		NoFsync:     a.v.GetBool("no-fsync"),
		IdleTimeout: a.v.GetDuration("timeout"),
		Log:         a.log,
		Version:     versionString(),
		Dial:        transfer.DialOptions{Log: a.log, ClientVersion: versionString()},
	})
	fmt.Fprintf(a.stderr, "listening on %s (root %s, transports %s)\n", ln.Addr(), root.Path(), strings.Join(offeredList(protos), ","))
	return srv.Serve(cmd.Context(), ln)
}

func offeredList(protos []string) []string {
	var out []string
	for _, n := range backends.Usable(protos) {
		out = append(out, n)
	}
	return out
}
