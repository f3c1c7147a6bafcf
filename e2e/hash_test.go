package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hashNames are names that b3sum escapes or rewrites: newlines,
// backslashes, both, a carriage return, and byte sequences that are not
// UTF-8 (each maximal invalid subsequence becomes one U+FFFD).
var hashNames = []string{
	"plain", "with space", "ünïcødé", "new\nline", `back\slash`, "both\\\nx", "cr\rx", "tab\tx",
	"ff\xff\xffz", "trunc\xe2\x82", "trunc2\xe2\x82x", "f0\xf0\x9f\x98", "surrogate\xed\xa0\x80",
	"overlong\xc0\xaf", "bad\xff\\\n", "-dash",
}

// runTool runs name with args in dir, stdin as given, and returns stdout,
// stderr and the exit code.
func runTool(t *testing.T, dir string, stdin []byte, name string, args ...string) (string, string, int) {
	t.Helper()
	r := runCmd(t, func(cmd *exec.Cmd) {
		cmd.Dir = dir
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
	}, name, args...)
	return r.stdout, r.stderr, r.code
}

// TestHashDifferentialB3sum: `xfer hash` prints byte for byte what b3sum
// prints, for odd names, standard input, and --check with and without
// --quiet, good and bad sums, escaped lines and malformed ones.
func TestHashDifferentialB3sum(t *testing.T) {
	b3 := needTool(t, "b3sum", "the reference")
	dir := t.TempDir()
	for i, n := range hashNames {
		writeRandom(t, filepath.Join(dir, n), int64(i*1000+1), uint64(i+1))
	}
	writeRandom(t, filepath.Join(dir, "big"), 9<<20+77, 99)
	names := append(append([]string{}, hashNames...), "big")
	input := []byte("standard input\n")

	type tc struct {
		name  string
		args  []string
		stdin []byte
	}
	cases := []tc{
		{"names", append([]string{"--"}, names...), nil},
		{"stdin, no file", nil, input},
		{"stdin as -", []string{"-"}, input},
		{"stdin between files", []string{"plain", "-", "new\nline"}, input},
	}
	// The sums b3sum writes, and damaged copies of them.
	want, _, code := runTool(t, dir, nil, b3, append([]string{"--"}, names...)...)
	if code != 0 {
		t.Fatalf("b3sum: exit %d", code)
	}
	must(t, os.WriteFile(filepath.Join(dir, "SUMS"), []byte(want), 0o644))
	lines := strings.SplitAfter(want, "\n")
	var okLines []string // lines --check can verify (names valid UTF-8)
	for _, l := range lines {
		if l != "" && !strings.ContainsRune(l, '\uFFFD') {
			okLines = append(okLines, l)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "GOOD"), []byte(strings.Join(okLines, "")), 0o644))
	bad := strings.Replace(strings.Join(okLines, ""), okLines[0][:8], "00000000", 1)
	must(t, os.WriteFile(filepath.Join(dir, "BAD"), []byte(bad), 0o644))
	malformed := "\n" + // empty line
		"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 *plain\n" + // one space
		"AF1349B9F5F9A1A6A0404DEA36DCC9499BCB25C9ADC112B7CC9A93CAE41F3262  plain\n" + // upper case
		"\\af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262  a\\tb\n" + // bad escape
		"\\af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262  plain\n" + // escaped, no escapes
		"short\n" + okLines[1] + okLines[2]
	must(t, os.WriteFile(filepath.Join(dir, "MALFORMED"), []byte(malformed), 0o644))
	for _, f := range []string{"SUMS", "GOOD", "BAD", "MALFORMED"} {
		cases = append(cases,
			tc{"check " + f, []string{"--check", f}, nil},
			tc{"check --quiet " + f, []string{"--check", "--quiet", f}, nil})
	}
	goodSums, _ := os.ReadFile(filepath.Join(dir, "GOOD"))
	cases = append(cases, tc{"check from stdin", []string{"--check"}, goodSums},
		tc{"check - from stdin", []string{"-c", "-"}, goodSums})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wo, _, wc := runTool(t, dir, c.stdin, b3, c.args...)
			xargs := c.args
			for i, a := range xargs {
				if a == "--quiet" {
					xargs = append(append(append([]string{}, xargs[:i]...), "-q"), xargs[i+1:]...)
				}
			}
			go_, ge, gc := runTool(t, dir, c.stdin, xferBin, append([]string{"hash"}, xargs...)...)
			if go_ != wo {
				t.Errorf("stdout differs from b3sum's\nxfer:  %q\nb3sum: %q", go_, wo)
			}
			if gc != wc {
				t.Errorf("exit %d, b3sum %d (stderr %q)", gc, wc, ge)
			}
			if strings.Contains(ge, "hashtree") || strings.Contains(ge, "strconv") {
				t.Errorf("Go-internal text on stderr: %q", ge)
			}
		})
	}
}

// TestHashMatchesB3sum: `xfer hash` prints what b3sum prints, and --check
// verifies such lines.
func TestHashMatchesB3sum(t *testing.T) {
	dir := t.TempDir()
	names := []string{"empty", "one", "k", "big", "odd name\nwith newline", `back\slash`}
	sizes := []int64{0, 1, 1024, 9<<20 + 77, 5000, 3}
	for i, n := range names {
		writeRandom(t, filepath.Join(dir, n), sizes[i], uint64(i+1))
	}
	got, errOut, code := runTool(t, dir, nil, xferBin, append([]string{"hash"}, names...)...)
	if code != 0 {
		t.Fatalf("xfer hash: exit %d\n%s", code, errOut)
	}
	// Known vectors, independent of b3sum: BLAKE3 of the empty input.
	if !strings.HasPrefix(got, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262  empty\n") {
		t.Errorf("hash of the empty file:\n%s", got)
	}
	if b3, err := exec.LookPath("b3sum"); err == nil {
		want, errOut, code := runTool(t, dir, nil, b3, names...)
		if code != 0 {
			t.Fatalf("b3sum: exit %d\n%s", code, errOut)
		}
		if got != want {
			t.Errorf("xfer hash and b3sum differ:\nxfer:\n%s\nb3sum:\n%s", got, want)
		}
	} else {
		t.Log("b3sum not installed: compared with known vectors only")
	}
	must(t, os.WriteFile(filepath.Join(dir, "SUMS"), []byte(got), 0o644))
	out, errOut, code := runTool(t, dir, nil, xferBin, "hash", "--check", "SUMS")
	if code != 0 || strings.Count(out+errOut, ": OK") != len(names) {
		t.Errorf("hash --check of good sums: exit %d\n%s%s", code, out, errOut)
	}
	must(t, os.WriteFile(filepath.Join(dir, "one"), []byte("changed"), 0o644))
	out, errOut, code = runTool(t, dir, nil, xferBin, "hash", "--check", "SUMS")
	if code != 1 || !strings.Contains(out+errOut, "one: FAILED") {
		t.Errorf("hash --check of a changed file: exit %d\n%s%s", code, out, errOut)
	}
}

// TestHashThreadsB3sum: `xfer hash --threads N` prints what b3sum prints
// for files at and beside the sizes the hashing cuts at (a BLAKE3 chunk,
// a leaf, the AVX-512 kernels' subtrees, a piece, an xfer chunk), on 1, 2
// and 8 threads (more threads than cores included), and --check agrees;
// a negative count is a usage error.
func TestHashThreadsB3sum(t *testing.T) {
	b3 := needTool(t, "b3sum", "the reference")
	dir := t.TempDir()
	var names []string
	for i, b := range []int64{1 << 10, 16 << 10, 32 << 10, 64 << 10, 256 << 10, 4 << 20, 12 << 20} {
		for _, d := range []int64{-1, 0, 1} {
			name := fmt.Sprintf("f%d", b+d)
			writeRandom(t, filepath.Join(dir, name), b+d, uint64(3*i+int(d)+10))
			names = append(names, name)
		}
	}
	want, errOut, code := runTool(t, dir, nil, b3, names...)
	if code != 0 {
		t.Fatalf("b3sum: exit %d\n%s", code, errOut)
	}
	must(t, os.WriteFile(filepath.Join(dir, "SUMS"), []byte(want), 0o644))
	for _, threads := range []string{"1", "2", "8", "0"} {
		got, errOut, code := runTool(t, dir, nil, xferBin, append([]string{"hash", "--threads", threads}, names...)...)
		if code != 0 || got != want {
			t.Errorf("xfer hash --threads %s: exit %d (stderr %q); differs from b3sum:\nxfer:\n%s\nb3sum:\n%s", threads, code, errOut, got, want)
		}
		out, errOut, code := runTool(t, dir, nil, xferBin, "hash", "--threads", threads, "--check", "-q", "SUMS")
		if code != 0 || out != "" {
			t.Errorf("xfer hash --threads %s --check -q SUMS: exit %d\n%s%s", threads, code, out, errOut)
		}
	}
	_, errOut, code = runTool(t, dir, nil, xferBin, "hash", "--threads", "-1", names[0])
	if code != 2 || !strings.Contains(errOut, "--threads -1: want a number of threads") {
		t.Errorf("xfer hash --threads -1: exit %d, want 2 and a usage message; stderr %q", code, errOut)
	}
}
