package e2e

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// badNameTree writes a tree whose names and link targets are not UTF-8,
// several of which look alike once invalid bytes become U+FFFD.
func badNameTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"\xff\xfe":               "ff fe",
		"\xfe\xff":               "fe ff", // the same as the one above after U+FFFD
		"caf\xe9":                "latin-1",
		"d\xff/f\xfe":            "in a dir",
		"d\xff/sub\x80/deep\xc3": "deeper",
		"plain":                  "ascii",
		"big\xff.bin":            "", // several chunks: announced by name, not batched
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(c), 0o644))
	}
	writeRandom(t, filepath.Join(dir, "big\xff.bin"), 3<<20+77, 7)
	must(t, os.Symlink("t\xff/x\xfe", filepath.Join(dir, "l\xfe")))
	must(t, os.Symlink("d\xff", filepath.Join(dir, "dir-link\xff")))
	must(t, os.Symlink("plain", filepath.Join(dir, "\xff")))
}

// plantLookalikes puts, where a sync goes, entries that are not in the
// source but would have the same names as source entries if invalid bytes
// were replaced: the sync must delete exactly these.
func plantLookalikes(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "d\xfe"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "d\xfe/f\xff"), []byte("extra"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "\xff\xff"), []byte("extra"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "\ufffd\ufffd"), []byte("a real U+FFFD name, also extra"), 0o644))
	must(t, os.Symlink("nowhere", filepath.Join(dir, "l\xff")))
}

// TestNonUTF8Names: names and link targets are bytes end to end, in every
// direction: nothing merges, a sync deletes exactly the extra entries, a
// second sync changes nothing, and output names each file unambiguously
// (--json: valid JSON with the exact bytes in path_b64; human: quoted,
// one line). Names used to become U+FFFD on the way through xfer://.
func TestNonUTF8Names(t *testing.T) {
	src := t.TempDir()
	badNameTree(t, src)
	a := startServerOn(t, "127.0.0.1", t.TempDir())
	b := startServerOn(t, "127.0.0.1", t.TempDir())
	clusterRoot := t.TempDir()
	agents := startCluster(t, clusterRoot, 8, 2)
	cfg := clusterConfig(t, map[string][]*server{"two": agents})
	// Copies of the source on the peers, to read from.
	for _, root := range []string{a.root, clusterRoot} {
		cmd := exec.Command("cp", "-a", src+"/.", filepath.Join(root, "tree"))
		must(t, os.MkdirAll(filepath.Join(root, "tree"), 0o755))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	local := t.TempDir()
	cases := []struct {
		name     string
		from, to string // arguments
		dstDir   string // where the destination is on disk
	}{
		{"local to peer", src, a.url("lp"), filepath.Join(a.root, "lp")},
		{"peer to local", a.url("tree"), filepath.Join(local, "pl"), filepath.Join(local, "pl")},
		{"peer to peer", a.url("tree"), b.url("pp"), filepath.Join(b.root, "pp")},
		{"local to cluster", src, "two:/lc", filepath.Join(clusterRoot, "lc")},
		{"cluster to local", "two:/tree", filepath.Join(local, "cl"), filepath.Join(local, "cl")},
		{"peer to cluster", a.url("tree"), "two:/pc", filepath.Join(clusterRoot, "pc")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			must(t, os.MkdirAll(tc.dstDir, 0o755))
			plantLookalikes(t, tc.dstDir)
			r := xfer(t, "--config", cfg, "sync", tc.from, tc.to, "--chunk-size", "1M", "--json")
			if r.code != 0 {
				t.Fatal(r)
			}
			sameTree(t, src, tc.dstDir)
			events, s := jsonRun(t, r)
			if s.FilesDeleted == 0 {
				t.Errorf("the look-alike extras were not deleted: %+v", s)
			}
			// Every event naming a non-UTF-8 path carries its bytes, and
			// they name entries of the trees.
			exact := 0
			for _, ev := range events {
				b64, ok := ev["path_b64"].(string)
				if !ok {
					continue
				}
				raw, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatalf("path_b64 %q: %v", b64, err)
				}
				p, _ := ev["path"].(string)
				if strings.ContainsRune(p, '\ufffd') || p == string(raw) {
					t.Errorf("path %q of %q is not its escaped form", p, raw)
				}
				_, errSrc := os.Lstat(filepath.Join(src, string(raw)))
				if ev["event"] != "delete" && errSrc != nil {
					t.Errorf("%s event for %q, which is not in the source", ev["event"], raw)
				}
				exact++
			}
			if exact == 0 {
				t.Errorf("no event carried path_b64:\n%s", r.stdout)
			}

			// A second run finds nothing to do.
			r = xfer(t, "--config", cfg, "sync", tc.from, tc.to, "--chunk-size", "1M", "--json")
			if r.code != 0 {
				t.Fatal(r)
			}
			events, s = jsonRun(t, r)
			if s.FilesTransferred != 0 || s.FilesDeleted != 0 || s.Errors != 0 {
				t.Errorf("second sync changed something: %+v\n%s", s, r.stdout)
			}
			for _, ev := range events {
				switch ev["event"] {
				case "mkdir", "symlink", "delete", "transfer":
					t.Errorf("second sync: %v", ev)
				}
			}
			sameTree(t, src, tc.dstDir)
		})
	}

	// Human output quotes such names, one line each.
	r := xfer(t, "sync", "-v", src, a.url("human"))
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{`transferred "\xff\xfe"`, `transferred "\xfe\xff"`, `transferred "d\xff/f\xfe"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("-v output lacks %s:\n%s", want, r.stdout)
		}
	}
	if strings.ContainsRune(r.stdout, '\ufffd') {
		t.Errorf("-v output shows U+FFFD:\n%s", r.stdout)
	}
}
