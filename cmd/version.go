package cmd

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/backends"
	_ "github.com/xfer-io/xfer/backends/all" // link every transport in
	"github.com/xfer-io/xfer/transfer"
)

// Stamped at build time with -ldflags "-X github.com/xfer-io/xfer/cmd.version=..."
// (see the Makefile and goreleaser.yaml).
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func versionString() string { return "xfer " + version }

// versionLine is the first line `xfer version` prints, and all that
// `xfer --version` prints.
func versionLine() string {
	return fmt.Sprintf("xfer %s (commit %s, built %s, %s %s/%s, protocol %d)",
		version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH, transfer.ProtocolVersion)
}

type transportStatus struct {
	Name   string `json:"name"`
	Usable bool   `json:"usable"`
	Reason string `json:"reason,omitempty"`
	// NotAuto says why --proto auto passes over a usable transport.
	NotAuto string `json:"not_auto,omitempty"`
}

func transportStatuses() []transportStatus {
	var out []transportStatus
	for _, name := range backends.Preference() {
		t, ok := backends.Lookup(name)
		st := transportStatus{Name: name}
		switch {
		case !ok:
			st.Reason = "not compiled into this binary"
		default:
			if err := t.Probe(); err != nil {
				st.Reason = err.Error()
			} else {
				st.Usable = true
				if ac, ok := t.(backends.AutoChooser); ok {
					if err := ac.AutoOK(); err != nil {
						st.NotAuto = err.Error()
					}
				}
			}
		}
		out = append(out, st)
	}
	return out
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the transports usable on this machine",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts := transportStatuses()
			if a.v.GetBool("json") {
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"version": version, "commit": commit, "date": date, "go": runtime.Version(),
					"protocol": transfer.ProtocolVersion, "transports": ts,
				})
			}
			fmt.Fprintln(a.stdout, versionLine())
			fmt.Fprintln(a.stdout, "transports:")
			for _, t := range ts {
				if t.Usable && t.NotAuto != "" {
					fmt.Fprintf(a.stdout, "  %-7s usable with --proto %s; auto passes it over: %s\n", t.Name, t.Name, t.NotAuto)
				} else if t.Usable {
					fmt.Fprintf(a.stdout, "  %-7s usable\n", t.Name)
				} else {
					fmt.Fprintf(a.stdout, "  %-7s unavailable: %s\n", t.Name, t.Reason)
				}
			}
			return nil
		},
	}
}
