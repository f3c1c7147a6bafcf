package location

import (
	"strings"
	"testing"
)

// FuzzParse: any command-line location either parses into something
// sensible or fails with an error; it never panics, and a remote path
// never climbs out of the served root.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"./a", "/abs", "xfer://127.0.0.1:7878/x", "nodeA:/p", "nodeA:../x", "xfer://[::1]:1/a/../b", "a:b:c", "xfer://h:1/%2e%2e/x"} {
		f.Add(s)
	}
	remotes := map[string]Remote{"nodea": {Agents: []string{"h:1"}}}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s, remotes)
		if err != nil {
			return
		}
		if !l.IsLocal() {
			for _, part := range strings.Split(l.Path, "/") {
				if part == ".." {
					t.Fatalf("%q parsed to a path that climbs out: %q", s, l.Path)
				}
			}
			if strings.HasPrefix(l.Path, "/") {
				t.Fatalf("%q parsed to an absolute remote path %q", s, l.Path)
			}
		}
	})
}
