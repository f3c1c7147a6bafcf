package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/config"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/location"
)

func newRemoteCmd(a *app) *cobra.Command {
	return commandGroup(&cobra.Command{
		Use:   "remote",
		Short: "Add, list or remove named remotes in the config file",
		Long: `A remote gives a name to an xfer serve peer (or to several agents of one
data set, or to a directory on a host reached through ssh), so that NAME:PATH
can stand for xfer://HOST:PORT/PATH (or ssh://HOST/DIR/PATH) in copy, sync
and the inspect commands (ls, lsf, size, cat, check). Remotes live in the remotes: section of the config file (see 'xfer
config'); these commands edit it in place, keeping its other keys and
comments, and write it atomically with mode 0600. Remote names are made of
letters, digits, '.', '_' and '-', and are not case-sensitive.`,
		PersistentPreRunE: a.initTolerant,
	}, newRemoteAddCmd(a), newRemoteLsCmd(a), newRemoteRmCmd(a))
}

func newRemoteAddCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "add NAME {xfer://HOST:PORT | HOST:PORT | ssh://[USER@]HOST[:PORT]/PATH | --agents HOST:PORT,... | --ssh [USER@]HOST[:PATH]}",
		Short: "Add a named remote to the config file",
		Long: `Add defines the remote NAME: one xfer serve peer given as xfer://HOST:PORT
(or HOST:PORT), several agents with --agents, the live members of a
cluster kept in etcd with --etcd URL --cluster NAME (docs/etcd.md), or a
directory on a host reached through ssh: ssh://[USER@]HOST[:PORT]/PATH
(/~/PATH for the remote home), or --ssh [USER@]HOST[:PATH] as rsync writes
it; NAME:SUB is then SUB beneath PATH (docs/ssh.md). --token-file names the file
holding the shared token of a server started with --token-file; the --tls-*
flags say how to reach a server that serves TLS. They are stored in the
remote's entry (files as absolute paths) and win over the same flags of
copy and sync. An existing remote of the same name is replaced only with
--force.

The config file and its directory are created if missing (mode 0600 and
0700). These flags describe one remote, so they are read from the command
line only, never from XFER_* variables or the config file.`,
		Example: `  xfer remote add nodeA xfer://10.0.0.1:7878
  xfer remote add lab ssh://me@lab.example.org/~/data
  xfer remote add lab2 --ssh me@lab.example.org:data
  xfer remote add pool --agents 10.0.0.2:7878,10.0.0.3:7878 --token-file /etc/xfer/token
  xfer remote add clusterA --etcd http://10.0.0.9:2379 --cluster clusterA
  xfer copy ./results nodeA:/incoming`,
		Args:              usageArgs(cobra.RangeArgs(1, 2)),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE:              a.remoteAdd,
	}
	f := c.Flags()
	f.StringSlice("agents", nil, "HOST:PORT of each agent, comma-separated (instead of the address argument)")
	f.String("token-file", "", "file holding the shared token of a server started with --token-file")
	f.String("tls-ca", "", "connect with TLS and verify the server against this CA certificate (PEM)")
	f.String("tls-cert", "", "client certificate (PEM) for a server that requires mutual TLS")
	f.String("tls-key", "", "private key (PEM) of --tls-cert")
	f.String("tls-server-name", "", "name to verify in the server's certificate, if not the host of its address")
	f.Bool("tls-data", true, "keep data streams inside TLS (stored only when given; false lets bulk data bypass TLS if the server allows it)")
	f.String("ssh", "", "a directory on a host reached through ssh, in rsync's form [USER@]HOST[:PATH] (PATH in the home directory unless absolute), instead of the address argument")
	f.Bool("force", false, "replace an existing remote of the same name")
	etcdFlags(f)
	return c
}

func (a *app) remoteAdd(cmd *cobra.Command, args []string) error {
	name := args[0]
	if !location.ValidName(name) {
		return exitcode.Usagef("remote name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	// Read from the command line only: see the command's help.
	fl := cmd.Flags()
	agents, _ := fl.GetStringSlice("agents")
	force, _ := fl.GetBool("force")
	sshShort, _ := fl.GetString("ssh")
	var sshTarget *location.SSH
	etcd, err := etcdConfig(fl)
	if err != nil {
		return err
	}
	switch {
	case etcd != nil && (len(args) == 2 || len(agents) > 0 || sshShort != ""):
		return exitcode.Usagef("remote add: give the address as an argument, with --agents, --ssh or --etcd, only one")
	case etcd != nil:
		for i, f := range []*string{&etcd.CACert, &etcd.Cert, &etcd.Key} {
			if *f != "" {
				abs, err := filepath.Abs(*f)
				if err != nil {
					return exitcode.Usagef("--%s %s: %v", []string{"etcd-cacert", "etcd-cert", "etcd-key"}[i], *f, err)
				}
				*f = abs
			}
		}
	case sshShort != "" && (len(args) == 2 || len(agents) > 0):
		return exitcode.Usagef("remote add: give the address as an argument, with --agents or with --ssh, only one")
	case sshShort != "":
		t, err := location.ParseSSHShort(sshShort)
		if err != nil {
			return exitcode.Usagef("remote add: --ssh %v", err)
		}
		sshTarget = &t
	case len(args) == 2 && len(agents) > 0:
		return exitcode.Usagef("remote add: give the address as an argument or with --agents, not both")
	case len(args) == 1 && len(agents) == 0:
		return exitcode.Usagef("remote add: give the address: xfer remote add %s xfer://HOST:PORT (or --agents HOST:PORT,...)", name)
	case len(args) == 2 && strings.HasPrefix(args[1], "ssh://"):
		t, err := location.ParseSSHURL(args[1])
		if err != nil {
			return exitcode.Usagef("remote add: %v", err)
		}
		sshTarget = &t
	case len(args) == 2:
		addr, err := parseRemoteAddr(args[1])
		if err != nil {
			return exitcode.Usagef("remote add: %v", err)
		}
		agents = []string{addr}
	}
	for i, ag := range agents {
		ag = strings.TrimSpace(ag)
		if err := location.ValidAddr(ag); err != nil {
			return exitcode.Usagef("remote add: --agents: %v", err)
		}
		agents[i] = ag
	}
	r := location.Remote{Name: name, Agents: agents, SSH: sshTarget, Etcd: etcd}
	r.TLSServerName, _ = fl.GetString("tls-server-name")
	if fl.Changed("tls-data") {
		b, _ := fl.GetBool("tls-data")
		r.TLSData = &b
	}
	for flag, dst := range map[string]*string{"token-file": &r.TokenFile, "tls-ca": &r.TLSCA, "tls-cert": &r.TLSCert, "tls-key": &r.TLSKey} {
		v, _ := fl.GetString(flag)
		if v == "" {
			continue
		}
		abs, err := filepath.Abs(v)
		if err != nil {
			return exitcode.Usagef("--%s %s: %v", flag, v, err)
		}
		if _, err := os.Stat(abs); err != nil {
			fmt.Fprintf(a.stderr, "xfer: warning: --%s: %v (recorded anyway)\n", flag, err)
		}
		*dst = abs
	}
	if sshTarget != nil {
		for _, flag := range []string{"token-file", "tls-ca", "tls-cert", "tls-key", "tls-server-name", "tls-data"} {
			if fl.Changed(flag) {
				return exitcode.Usagef("remote add: --%s does not apply to a remote reached through ssh (ssh authenticates it)", flag)
			}
		}
	}
	if (r.TLSCert == "") != (r.TLSKey == "") {
		return exitcode.Usagef("remote add: --tls-cert and --tls-key go together")
	}
	path, _ := a.configPath()
	f, err := config.Load(path)
	if err != nil {
		return exitcode.Usagef("%v (fix it with 'xfer config edit')", err)
	}
	if err := f.AddRemote(r, force); err != nil {
		if errors.Is(err, config.ErrRemoteExists) {
			return exitcode.Usagef("%v (use --force to replace it)", err)
		}
		return exitcode.Usagef("%v", err)
	}
	if err := f.Save(); err != nil {
		return exitcode.Usagef("%v", err)
	}
	if !a.v.GetBool("quiet") {
		fmt.Fprintf(a.stdout, "remote %s -> %s saved in %s\n", name, remoteWhere(r), path)
	}
	return nil
}

// parseRemoteAddr accepts xfer://HOST:PORT or HOST:PORT.
func parseRemoteAddr(s string) (string, error) {
	if strings.Contains(s, "://") {
		addr, p, err := location.ParseURL(s)
		if err != nil {
			return "", err
		}
		if p != "" {
			return "", fmt.Errorf("%q: a remote names a whole peer; drop the path /%s and give it when using the remote (NAME:/%s)", s, p, p)
		}
		return addr, nil
	}
	if err := location.ValidAddr(s); err != nil {
		return "", fmt.Errorf("%v (or give xfer://HOST:PORT)", err)
	}
	return s, nil
}

// remoteJSON is one line of `xfer remote ls --json`: the entry's keys.
type remoteJSON struct {
	Name          string   `json:"name"`
	Agents        []string `json:"agents"`
	TokenFile     string   `json:"token_file,omitempty"`
	TLSCA         string   `json:"tls_ca,omitempty"`
	TLSCert       string   `json:"tls_cert,omitempty"`
	TLSKey        string   `json:"tls_key,omitempty"`
	TLSServerName string   `json:"tls_server_name,omitempty"`
	TLSData       *bool    `json:"tls_data,omitempty"`
	URL           string   `json:"url,omitempty"` // an ssh:// remote's
}

// remoteWhere is what a remote names: its agents, or its ssh:// URL.
func remoteWhere(r location.Remote) string {
	if r.SSH != nil {
		return r.SSH.URL()
	}
	if r.Etcd != nil {
		return "etcd " + strings.Join(r.Etcd.Endpoints, ",") + " cluster " + r.Etcd.Cluster
	}
	return strings.Join(r.Agents, ",")
}

func newRemoteLsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the remotes in the config file",
		Long: `Ls prints a table of the remotes in the config file: name, agents
(HOST:PORT, comma-separated), token file and TLS (the CA file, "+cert" with a
client certificate). With --json it prints one object per remote and line,
with the entry's keys: {"name", "agents", "token_file", "tls_ca",
"tls_cert", "tls_key", "tls_server_name", "tls_data", "url"} (unset ones
left out; url is an ssh:// remote's, whose agents column shows it).
Exit status 2 if the remotes section is invalid.`,
		Args:              usageArgs(cobra.NoArgs),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, _ := a.configPath()
			f, err := config.Load(path)
			if err != nil {
				return exitcode.Usagef("%v", err)
			}
			rs, err := f.Remotes()
			if err != nil {
				return exitcode.Usagef("%v", err)
			}
			if a.v.GetBool("json") {
				enc := json.NewEncoder(a.stdout)
				for _, r := range rs {
					rj := remoteJSON{r.Name, r.Agents, r.TokenFile, r.TLSCA, r.TLSCert, r.TLSKey, r.TLSServerName, r.TLSData, ""}
					if r.SSH != nil {
						rj.URL = r.SSH.URL()
					}
					if err := enc.Encode(rj); err != nil {
						return err
					}
				}
				return nil
			}
			if len(rs) == 0 {
				if !a.v.GetBool("quiet") {
					fmt.Fprintf(a.stderr, "no remotes in %s (add one with: xfer remote add NAME xfer://HOST:PORT)\n", path)
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tAGENTS\tTOKEN FILE\tTLS")
			dash := func(s string) string {
				if s == "" {
					return "-"
				}
				return s
			}
			for _, r := range rs {
				tlsDesc := r.TLSCA
				if r.TLSCert != "" {
					tlsDesc += "+cert"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, remoteWhere(r), dash(r.TokenFile), dash(tlsDesc))
			}
			return tw.Flush()
		},
	}
}

func newRemoteRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a remote from the config file",
		Long: `Rm deletes the remote NAME (in any letter case) from the config file,
keeping everything else. Exit status 2 if there is no such remote.`,
		Example:           `  xfer remote rm nodeA`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeRemoteNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, _ := a.configPath()
			f, err := config.Load(path)
			if err != nil {
				return exitcode.Usagef("%v (fix it with 'xfer config edit')", err)
			}
			spelled, err := f.RemoveRemote(args[0])
			if err != nil {
				return exitcode.Usagef("%v (fix it with 'xfer config edit')", err)
			}
			if spelled == "" {
				return exitcode.Usagef("no remote %q in %s (see 'xfer remote ls')", args[0], path)
			}
			if err := f.Save(); err != nil {
				return exitcode.Usagef("%v", err)
			}
			if !a.v.GetBool("quiet") {
				fmt.Fprintf(a.stdout, "remote %s removed from %s\n", spelled, path)
			}
			return nil
		},
	}
}
