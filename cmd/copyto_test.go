package cmd

import (
	"testing"

	"github.com/xfer-io/xfer/transfer"
)

// TestSplitName: copyto and moveto take the last name of DST as the
// copy's name and the rest as the directory it lands in; a path without
// a name keeps the copy's own.
func TestSplitName(t *testing.T) {
	for _, c := range []struct {
		ep        transfer.Endpoint
		dir, name string
	}{
		{transfer.Endpoint{Path: "out/b.txt"}, "out", "b.txt"},
		{transfer.Endpoint{Path: "b.txt"}, ".", "b.txt"},
		{transfer.Endpoint{Path: "/abs/dir/"}, "/abs", "dir"},
		{transfer.Endpoint{Path: "/"}, "/", ""},
		{transfer.Endpoint{Path: "."}, ".", ""},
		{transfer.Endpoint{Path: "../.."}, "../..", ""},
		{transfer.Endpoint{Addr: "h:1", Path: "p/q/r.bin"}, "p/q", "r.bin"},
		{transfer.Endpoint{Addr: "h:1", Path: "r.bin"}, "", "r.bin"},
		{transfer.Endpoint{Addr: "h:1", Path: ""}, "", ""},
		{transfer.Endpoint{Addr: "h:1", Path: "/"}, "/", ""},
	} {
		ep, name := splitName(c.ep)
		if ep.Path != c.dir || name != c.name {
			t.Errorf("splitName(%q): %q, %q; want %q, %q", c.ep.Path, ep.Path, name, c.dir, c.name)
		}
	}
}
