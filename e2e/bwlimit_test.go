package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeBwLimit checks that serve --bwlimit holds an agent to its cap,
// each way and over its sessions together: the test times a few tens of
// MiB pushed to, pulled from and pushed by (a third-party job) agents
// capped at 20 MiB/s, which loopback would otherwise carry in well under
// a second.
func TestServeBwLimit(t *testing.T) {
	const (
		capMiB = 20
		size   = 40 << 20 // in all: two seconds at the cap
	)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big/a.bin"), size/2, 1)
	writeRandom(t, filepath.Join(src, "big/b.bin"), size/2, 2)
	capped := startServerOn(t, "127.0.0.2", t.TempDir(), "--bwlimit", fmt.Sprintf("%dM", capMiB))
	other := startServerOn(t, "127.0.0.3", t.TempDir())

	// timed runs one copy, checks it completed, and that its rate was at
	// most the cap (with room for the first burst) and not far below it.
	timed := func(t *testing.T, what string, args ...string) {
		t.Helper()
		start := time.Now()
		r := xfer(t, append(args, "--chunk-size", "1M", "--streams", "4", "--proto", "tcp", "--json")...)
		took := time.Since(start)
		if r.code != 0 {
			t.Fatal(r)
		}
		_, s := jsonRun(t, r)
		if s.BytesTransferred != size {
			t.Fatalf("%s: moved %d bytes, want %d\n%s", what, s.BytesTransferred, size, r)
		}
		ideal := time.Duration(float64(size) / float64(capMiB<<20) * float64(time.Second))
		rate := float64(size) / took.Seconds() / (1 << 20)
		t.Logf("%s: %d MiB in %s: %.1f MiB/s at a cap of %d MiB/s", what, size>>20, took.Round(time.Millisecond), rate, capMiB)
		if took < ideal*8/10 {
			t.Errorf("%s took %s, under 0.8 x the %s the cap allows: the cap did not hold (%.1f MiB/s)", what, took, ideal, rate)
		}
		if took > 3*ideal+5*time.Second {
			t.Errorf("%s took %s, far beyond the %s the cap allows", what, took, ideal)
		}
	}
	t.Run("receive", func(t *testing.T) {
		timed(t, "push to the capped agent", "copy", src, capped.url("in"))
		sameTree(t, src, filepath.Join(capped.root, "in"))
	})
	t.Run("send", func(t *testing.T) {
		out := t.TempDir()
		timed(t, "pull from the capped agent", "copy", capped.url("in"), out)
		sameTree(t, src, out)
	})
	t.Run("third-party push", func(t *testing.T) {
		timed(t, "capped agent pushing to another", "copy", capped.url("in"), other.url("out"))
		sameTree(t, src, filepath.Join(other.root, "out"))
	})
	t.Run("sessions together", func(t *testing.T) {
		// Two clients at once share the one cap: together they take as
		// long as one run of both halves.
		start := time.Now()
		var runs []*bgXfer
		for i, f := range []string{"a.bin", "b.bin"} {
			runs = append(runs, startXfer(t, "copy", filepath.Join(src, "big", f), capped.url(fmt.Sprintf("two/%d/", i)), "--chunk-size", "1M", "--proto", "tcp", "-q"))
		}
		for _, r := range runs {
			if res := r.waitWithin(t, 60*time.Second); res.code != 0 {
				t.Fatal(res)
			}
		}
		took := time.Since(start)
		ideal := time.Duration(float64(size) / float64(capMiB<<20) * float64(time.Second))
		t.Logf("two sessions: %d MiB in %s", size>>20, took.Round(time.Millisecond))
		if took < ideal*8/10 {
			t.Errorf("two sessions together took %s, under 0.8 x %s: each got a cap of its own", took, ideal)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		// Two capped agents per side carry twice one agent's cap, and no
		// agent more than its own.
		rootA, rootB := t.TempDir(), t.TempDir()
		capFlag := fmt.Sprintf("%dM", capMiB)
		a := startCluster(t, rootA, 4, 2, "--bwlimit", capFlag)
		b := startCluster(t, rootB, 6, 2, "--bwlimit", capFlag)
		cfg := clusterConfig(t, map[string][]*server{"capA": a, "capB": b})
		writeRandom(t, filepath.Join(rootA, "t/big/a.bin"), size/2, 1)
		writeRandom(t, filepath.Join(rootA, "t/big/b.bin"), size/2, 2)
		start := time.Now()
		r := xfer(t, "--config", cfg, "sync", "capA:/t", "capB:/t", "--chunk-size", "1M", "--proto", "tcp", "--json")
		took := time.Since(start)
		if r.code != 0 {
			t.Fatal(r)
		}
		_, s := clusterRun(t, r)
		sameTree(t, filepath.Join(rootA, "t"), filepath.Join(rootB, "t"))
		ideal := time.Duration(float64(size) / float64(2*capMiB<<20) * float64(time.Second))
		t.Logf("cluster of 2 capped agents per side: %d MiB in %s (%s at 2 x the cap)", size>>20, took.Round(time.Millisecond), ideal)
		if took < ideal*8/10 {
			t.Errorf("took %s, under 0.8 x %s: an agent went beyond its cap", took, ideal)
		}
		if took > 3*ideal+5*time.Second {
			t.Errorf("took %s, far beyond the %s two capped agents allow", took, ideal)
		}
		for _, ag := range append(append([]*server{}, a...), b...) {
			if st := s.Agents[ag.addr]; st.Bytes < size/4 || st.Bytes > size*3/4 {
				t.Errorf("agent %s carried %d of %d bytes: unbalanced", ag.addr, st.Bytes, size)
			}
		}
		// Again: nothing left to move.
		r = xfer(t, "--config", cfg, "sync", "capA:/t", "capB:/t", "--proto", "tcp", "--json")
		if _, s = clusterRun(t, r); r.code != 0 || s.FilesTransferred != 0 || s.BytesSent != 0 {
			t.Errorf("second sync moved %d files, %d bytes\n%s", s.FilesTransferred, s.BytesSent, r)
		}
	})
	t.Run("bad rate", func(t *testing.T) {
		r := xfer(t, "serve", "--root", t.TempDir(), "--listen", "127.0.0.2:0", "--bwlimit", "10")
		if r.code != 2 || !strings.Contains(r.stderr, `--bwlimit "10": want bytes per second of at least 1K`) {
			t.Fatal(r)
		}
	})
}
