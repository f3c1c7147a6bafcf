package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// choiceMargin mirrors backends.ChoiceMargin: a more preferred transport
// within this fraction of the fastest is chosen over it.
const choiceMargin = 0.10

// checkMeasured asserts that a summary's transport choice is the one its
// own figures call for: the fastest measured, unless a more preferred one
// (earlier in the list) is within the margin; and that the text reason
// carries the same figures.
func checkMeasured(t *testing.T, s summary) {
	t.Helper()
	c := s.ProtoChoice
	if c == nil || c.Proto != s.Proto || len(c.Rates) < 2 {
		t.Fatalf("summary without a measured choice: proto %q, choice %+v", s.Proto, c)
	}
	best := 0.0
	for _, r := range c.Rates {
		if r.Error == "" && r.GBs > best {
			best = r.GBs
		}
		if r.Error == "" && (r.Bytes <= 0 || r.Bytes > 64<<20) {
			t.Errorf("probe of %s moved %d bytes: want some, bounded", r.Proto, r.Bytes)
		}
		fig := fmt.Sprintf("%s %.2f GB/s", r.Proto, r.GBs)
		if r.Error != "" {
			fig = r.Proto + " failed"
		}
		if !strings.Contains(s.ProtoReason, fig) {
			t.Errorf("reason %q lacks %q", s.ProtoReason, fig)
		}
	}
	for _, r := range c.Rates {
		if r.Error != "" {
			if r.Proto == c.Proto {
				t.Errorf("chose %s, whose probe failed: %+v", c.Proto, c.Rates)
			}
			continue
		}
		inMargin := r.GBs >= best*(1-choiceMargin)-0.0005
		if r.Proto == c.Proto {
			if !inMargin {
				t.Errorf("chose %s at %.3f GB/s, best was %.3f: %+v", c.Proto, r.GBs, best, c.Rates)
			}
			return
		}
		if inMargin {
			t.Errorf("chose %s over %s, which is preferred and measured %.3f of best %.3f GB/s", c.Proto, r.Proto, r.GBs, best)
		}
	}
	t.Errorf("chosen %s is not among the figures %+v", c.Proto, c.Rates)
}

// rateOf is the measured rate of proto in s's choice (0: not measured).
func rateOf(s summary, proto string) float64 {
	for _, r := range s.ProtoChoice.Rates {
		if r.Proto == proto && r.Error == "" {
			return r.GBs
		}
	}
	return 0
}

// bestOther is the best measured rate in s's choice of a transport other
// than proto.
func bestOther(s summary, proto string) float64 {
	best := 0.0
	for _, r := range s.ProtoChoice.Rates {
		if r.Proto != proto && r.Error == "" && r.GBs > best {
			best = r.GBs
		}
	}
	return best
}

// TestAutoProtoProbe: with UCX_TLS=tcp on both ends (rdma eligible, as
// under an HPC module system), auto measures every transport both ends
// offer and takes the fastest by its own figures; the second run to the
// same peer takes the cached result and changes nothing; --proto forces.
func TestAutoProtoProbe(t *testing.T) {
	t.Setenv("UCX_TLS", "tcp")
	t.Setenv("UCX_NET_DEVICES", "lo")
	usable := usableTransports(t)
	if len(usable) < 2 {
		t.Skipf("one usable transport here (%v): nothing to choose", usable)
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 9<<20+7, 14)
	manySmallFiles(t, filepath.Join(src, "small"), 3, 20)
	s := startServer(t, t.TempDir())
	env := append([]string{"XDG_CACHE_HOME=" + t.TempDir()}, ucxEnv...)

	r := xferEnv(t, env, "copy", src, s.url("d"), "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, first := jsonRun(t, r)
	if first.ProtoChoice == nil || first.ProtoChoice.By != "measured" {
		t.Fatalf("first run: want a measured choice, got %+v (%q)", first.ProtoChoice, first.ProtoReason)
	}
	checkMeasured(t, first)
	if rdma, fastest := rateOf(first, "rdma"), bestOther(first, "rdma"); first.Proto == "rdma" && rdma < fastest*(1-choiceMargin) {
		t.Errorf("auto ended on rdma (UCX over tcp) at %.3f GB/s with another transport at %.3f", rdma, fastest)
	}
	probed := map[string]bool{}
	for _, rt := range first.ProtoChoice.Rates {
		probed[rt.Proto] = true
	}
	for _, p := range usable {
		if !probed[p] {
			t.Errorf("usable transport %s was not probed: %+v", p, first.ProtoChoice.Rates)
		}
	}
	sameTree(t, src, filepath.Join(s.root, "d"))

	r = xferEnv(t, env, "copy", src, s.url("d"), "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	_, second := jsonRun(t, r)
	if c := second.ProtoChoice; c == nil || c.By != "cached" || second.Proto != first.Proto ||
		c.MeasuredAt != first.ProtoChoice.MeasuredAt || !strings.HasPrefix(second.ProtoReason, "cached: "+first.Proto) {
		t.Errorf("second run: want the cached %s, got %s %+v (%q)", first.Proto, second.Proto, c, second.ProtoReason)
	}
	if second.FilesTransferred != 0 || second.BytesSent != 0 {
		t.Errorf("second run changed something: %+v", second)
	}

	r = xferEnv(t, env, "copy", src, s.url("f"), "--json", "--proto", "tcp")
	if r.code != 0 {
		t.Fatal(r)
	}
	if _, sum := jsonRun(t, r); sum.Proto != "tcp" || sum.ProtoChoice == nil || sum.ProtoChoice.By != "forced" || sum.ProtoReason != "forced by --proto" {
		t.Errorf("--proto tcp: got %s %+v (%q)", sum.Proto, sum.ProtoChoice, sum.ProtoReason)
	}
	sameTree(t, src, filepath.Join(s.root, "f"))

	// A pull is chosen the same way, from the same cache.
	back := filepath.Join(t.TempDir(), "back")
	r = xferEnv(t, env, "copy", s.url("d"), back, "--json")
	if r.code != 0 {
		t.Fatal(r)
	}
	if _, sum := jsonRun(t, r); sum.ProtoChoice == nil || sum.ProtoChoice.By != "cached" || sum.Proto != first.Proto {
		t.Errorf("pull: want the cached %s, got %s %+v", first.Proto, sum.Proto, sum.ProtoChoice)
	}
	sameTree(t, src, back)
}

// TestAutoProtoFallbacks: probes that fail (the server admits one session
// per client, so every probe but the first is refused) leave the run on a
// transport that worked; a cached transport the server no longer offers
// is measured afresh; a server offering one transport is "only one
// candidate".
func TestAutoProtoFallbacks(t *testing.T) {
	usable := usableTransports(t)
	if len(usable) < 2 {
		t.Skipf("one usable transport here (%v): nothing to choose", usable)
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "f.bin"), 3<<20+1, 15)

	t.Run("probe refused", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "--max-sessions-per-client", "1")
		env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
		r := xferEnv(t, env, "copy", src, s.url("d"), "--json")
		if r.code != 0 {
			t.Fatal(r)
		}
		_, sum := jsonRun(t, r)
		checkMeasured(t, sum)
		failed := 0
		for _, rt := range sum.ProtoChoice.Rates {
			if rt.Error != "" {
				failed++
			}
		}
		if rates := sum.ProtoChoice.Rates; failed != len(rates)-1 || sum.Proto != rates[0].Proto {
			t.Errorf("want every probe but the first session's refused, and that one chosen; got %s %+v", sum.Proto, rates)
		}
		sameTree(t, src, filepath.Join(s.root, "d"))
		if r := xferEnv(t, env, "copy", src, s.url("d"), "--json"); r.code != 0 {
			t.Error(r)
		} else if _, sum := jsonRun(t, r); sum.FilesTransferred != 0 {
			t.Errorf("second run changed something: %+v", sum)
		}
	})

	t.Run("cached transport gone", func(t *testing.T) {
		offer := usable[len(usable)-2:]
		s := startServer(t, t.TempDir(), "--protos", strings.Join(offer, ","))
		cache := t.TempDir()
		env := []string{"XDG_CACHE_HOME=" + cache}
		r := xferEnv(t, env, "copy", src, s.url("d"), "--json")
		if r.code != 0 {
			t.Fatal(r)
		}
		_, sum := jsonRun(t, r)
		checkMeasured(t, sum)
		// Point the cached entry at a transport this server does not
		// offer, as if it had been restarted with other --protos.
		path := filepath.Join(cache, "xfer", "proto-probe.json")
		b, err := os.ReadFile(path)
		must(t, err)
		gone := usable[0]
		b = []byte(strings.Replace(string(b), `"proto": "`+sum.Proto+`",`, `"proto": "`+gone+`",`, 1))
		must(t, os.WriteFile(path, b, 0o600))
		r = xferEnv(t, env, "copy", src, s.url("e"), "--json")
		if r.code != 0 {
			t.Fatal(r)
		}
		_, again := jsonRun(t, r)
		if again.ProtoChoice == nil || again.ProtoChoice.By != "measured" {
			t.Errorf("a cached %s the server no longer offers: want a fresh probe, got %s %+v", gone, again.Proto, again.ProtoChoice)
		}
		sameTree(t, src, filepath.Join(s.root, "e"))
	})

	t.Run("bwlimit, dry run and a capped server measure nothing", func(t *testing.T) {
		for _, c := range []struct {
			serve []string // flags of the server
			flag  string   // flag of the copy ("" none)
			why   string   // in the reason
		}{
			{nil, "--dry-run", "dry run"},
			{nil, "--bwlimit=100M", "--bwlimit"},
			{[]string{"--bwlimit", "500M"}, "", "serve --bwlimit"},
		} {
			s := startServer(t, t.TempDir(), c.serve...)
			args := []string{"copy", src, s.url("d"), "--json"}
			if c.flag != "" {
				args = append(args, c.flag)
			}
			r := xfer(t, args...)
			if r.code != 0 {
				t.Fatal(r)
			}
			if _, sum := jsonRun(t, r); sum.ProtoChoice == nil || sum.ProtoChoice.By != "preference" || len(sum.ProtoChoice.Rates) != 0 ||
				!strings.Contains(sum.ProtoReason, c.why) {
				t.Errorf("%q %s: want the preference order, unmeasured; got %s %+v (%q)", c.serve, c.flag, sum.Proto, sum.ProtoChoice, sum.ProtoReason)
			}
			if c.flag != "--dry-run" {
				sameTree(t, src, filepath.Join(s.root, "d"))
			}
		}
	})

	t.Run("only one candidate", func(t *testing.T) {
		s := startServer(t, t.TempDir(), "--protos", "tcp")
		r := xfer(t, "copy", src, s.url("d"), "--json")
		if r.code != 0 {
			t.Fatal(r)
		}
		if _, sum := jsonRun(t, r); sum.Proto != "tcp" || sum.ProtoChoice == nil || sum.ProtoChoice.By != "only one candidate" ||
			!strings.HasPrefix(sum.ProtoReason, "only one candidate") {
			t.Errorf("tcp-only server: got %s %+v (%q)", sum.Proto, sum.ProtoChoice, sum.ProtoReason)
		}
	})
}
