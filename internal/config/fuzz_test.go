package config

import "testing"

// FuzzValidate: the config loader's validation never panics on any file
// content, and a file it calls clean really parses.
func FuzzValidate(f *testing.F) {
	f.Add([]byte("remotes:\n  a:\n    url: xfer://h:1\nstreams: 8\n"))
	f.Add([]byte("remotes: [1, 2]\n"))
	f.Add([]byte("remotes:\n  a b:\n    address: x\n"))
	f.Add([]byte(":\n\t- ["))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep := Validate(b, keys)
		if rep.OK() {
			if _, err := parse(b); err != nil {
				t.Fatalf("Validate accepted a file that does not parse: %v", err)
			}
		}
	})
}
