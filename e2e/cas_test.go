package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/internal/pattern"
)

// casRun runs xfer with stdin and extra environment.
func casRun(t *testing.T, stdin []byte, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, func(cmd *exec.Cmd) {
		cmd.Env = append(baseEnv(t), env...)
		cmd.Stdin = bytes.NewReader(stdin)
	}, xferBin, args...)
}

// refSum is the reference BLAKE3 of a file: b3sum where installed, else
// xfer hash (itself checked against b3sum elsewhere).
func refSum(t *testing.T, path string) string {
	t.Helper()
	if b3, err := exec.LookPath("b3sum"); err == nil {
		out, err := exec.Command(b3, "--no-names", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	r := xfer(t, "hash", path)
	return strings.Fields(r.stdout)[0]
}

func wantCode(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\n%s", what, r.code, code, r)
	}
}

func TestCASLocal(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	env := []string{"XFER_CAS=" + store}
	sizes := []int64{0, 5, 4096, 1 << 20, 1<<20 + 1, 9<<20 + 77}
	var ids []string
	for i, n := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("f%d", i))
		writeRandom(t, path, n, uint64(i+1))
		want := refSum(t, path)
		r := casRun(t, nil, env, "cas", "put", path)
		wantCode(t, r, 0, "put")
		if got := strings.TrimSpace(r.stdout); got != want {
			t.Fatalf("put of %d bytes printed %q, b3sum says %s", n, got, want)
		}
		content, _ := os.ReadFile(path)
		r = casRun(t, content, env, "cas", "put", "-")
		if strings.TrimSpace(r.stdout) != want {
			t.Fatalf("put - of %d bytes printed %q, want %s\n%s", n, r.stdout, want, r)
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		wantCode(t, casRun(t, nil, env, "cas", "get", want, out), 0, "get")
		if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
			t.Fatalf("get of %d bytes wrote different content", n)
		}
		r = casRun(t, nil, env, "cas", "get", want, "-")
		if r.code != 0 || r.stdout != string(content) {
			t.Fatalf("get to stdout of %d bytes: %s", n, r)
		}
		ids = append(ids, want)
	}
	absent := strings.Repeat("0", 64)
	r := casRun(t, nil, env, "cas", "has", ids[1], absent)
	wantCode(t, r, 1, "has with one missing")
	if !strings.Contains(r.stdout, ids[1]+"  5\n") || !strings.Contains(r.stdout, absent+"  missing") {
		t.Fatalf("has output:\n%s", r)
	}
	wantCode(t, casRun(t, nil, env, append([]string{"cas", "has"}, ids...)...), 0, "has all")
	r = casRun(t, nil, env, "cas", "ls")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != len(ids) {
		t.Fatalf("ls lists %d objects, want %d:\n%s", len(lines), len(ids), r)
	}
	r = casRun(t, nil, env, "cas", "stat", "--json")
	var st map[string]int64
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, r)
	}
	var total int64
	for _, n := range sizes {
		total += n
	}
	if st["objects"] != int64(len(ids)) || st["bytes"] != total || st["dedup_saved"] != total {
		t.Fatalf("stat: %v (every object was put twice: dedup saved should be %d)", st, total)
	}
	r = casRun(t, nil, env, "cas", "stat")
	if want := fmt.Sprintf("objects:      %d (%d B, 11.0 MiB)\n", len(ids), total); !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stat prints\n%s\nwant it to start with %q", r.stdout, want)
	}
	// The --cas flag wins over XFER_CAS.
	other := filepath.Join(dir, "other")
	wantCode(t, casRun(t, nil, env, "cas", "--cas", other, "has", ids[2]), 1, "has in another store")
	wantCode(t, casRun(t, nil, env, "cas", "rm", ids[2], absent), 1, "rm with one missing")
	wantCode(t, casRun(t, nil, env, "cas", "get", ids[2], filepath.Join(dir, "gone")), 1, "get removed")
	if _, err := os.Stat(filepath.Join(dir, "gone")); err == nil {
		t.Error("get of a removed object created its output")
	}
	wantCode(t, casRun(t, nil, env, "cas", "get", "not-an-id"), 2, "get of a bad id")
	wantCode(t, casRun(t, nil, env, "cas", "put", filepath.Join(dir, "nope")), 2, "put of a missing file")
}

// TestCASVerify damages a packed and a standalone object: verify reports
// and quarantines both, gets refuse them, and a new put stores them again.
func TestCASVerify(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	env := []string{"XFER_CAS=" + store}
	small, large := filepath.Join(dir, "small"), filepath.Join(dir, "large")
	writeRandom(t, small, 3000, 1)
	writeRandom(t, large, 3<<20, 2)
	sid := strings.TrimSpace(casRun(t, nil, env, "cas", "put", small).stdout)
	lid := strings.TrimSpace(casRun(t, nil, env, "cas", "put", large).stdout)
	intact := strings.TrimSpace(casRun(t, []byte("intact"), env, "cas", "put", "-").stdout)
	packs, _ := filepath.Glob(filepath.Join(store, "packs", "pack-*.dat"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	flip(t, packs[0], 64+1500) // inside the first object's content
	flip(t, filepath.Join(store, "objects", lid[:2], lid[2:]), 2<<20)

	out := filepath.Join(dir, "out")
	wantCode(t, casRun(t, nil, env, "cas", "get", sid, out), 1, "get of a corrupt packed object")
	wantCode(t, casRun(t, nil, env, "cas", "get", lid, out), 1, "get of a corrupt standalone object")
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a corrupt get left its output")
	}
	r := casRun(t, nil, env, "cas", "verify")
	wantCode(t, r, 1, "verify")
	for _, id := range []string{sid, lid} {
		if !strings.Contains(r.stdout, id+": CORRUPT") {
			t.Errorf("verify did not report %s:\n%s", id, r)
		}
	}
	if !strings.Contains(r.stdout, "verified 3 objects: 2 corrupt") {
		t.Errorf("verify summary:\n%s", r)
	}
	q, _ := os.ReadDir(filepath.Join(store, "quarantine"))
	if len(q) != 2 {
		t.Errorf("quarantine holds %d files, want 2", len(q))
	}
	wantCode(t, casRun(t, nil, env, "cas", "has", sid), 1, "has after quarantine")
	wantCode(t, casRun(t, nil, env, "cas", "has", intact), 0, "has intact")
	wantCode(t, casRun(t, nil, env, "cas", "verify"), 0, "verify after quarantine")
	wantCode(t, casRun(t, nil, env, "cas", "put", small), 0, "put again")
	wantCode(t, casRun(t, nil, env, "cas", "get", sid, out), 0, "get after put again")
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	must(t, os.Chmod(path, 0o644))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x5a
	_, err = f.WriteAt(b, off)
	must(t, err)
}

func TestCASRemote(t *testing.T) {
	dir := t.TempDir()
	peerStore := filepath.Join(dir, "peer-store")
	srv := startServer(t, t.TempDir(), "--cas", peerStore)
	ro := startServer(t, t.TempDir(), "--cas", filepath.Join(dir, "ro-store"), "--cas-read-only")
	plain := startServer(t, t.TempDir())
	remote := "xfer://" + srv.addr
	cfg := filepath.Join(dir, "xfer.yaml")
	must(t, os.WriteFile(cfg, []byte("remotes:\n  store:\n    url: "+remote+"\n"), 0o600))
	local := []string{"XFER_CAS=" + filepath.Join(dir, "local")}

	for i, n := range []int64{10, 1 << 20, 6<<20 + 1} {
		path := filepath.Join(dir, fmt.Sprintf("f%d", i))
		writeRandom(t, path, n, uint64(10+i))
		want := refSum(t, path)
		content, _ := os.ReadFile(path)
		for _, args := range [][]string{
			{"cas", "put", path, remote},
			{"cas", "put", path, "store", "--config", cfg},
			{"cas", "put", "-", "store:", "--config", cfg},
		} {
			r := casRun(t, content, local, args...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != want {
				t.Fatalf("%v: printed %q, want %s\n%s", args, r.stdout, want, r)
			}
		}
		r := casRun(t, nil, local, "cas", "has", "--from", remote, want)
		if r.code != 0 || !strings.Contains(r.stdout, want+"  "+strconv.FormatInt(n, 10)) {
			t.Fatalf("has --from: %s", r)
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		wantCode(t, casRun(t, nil, local, "cas", "get", want, out, "--from", remote), 0, "get --from")
		if got, _ := os.ReadFile(out); !bytes.Equal(got, content) {
			t.Fatal("get --from wrote different content")
		}
		r = casRun(t, nil, local, "cas", "get", want, "--from", "store", "--config", cfg)
		if r.code != 0 || r.stdout != string(content) {
			t.Fatalf("get --from to stdout: exit %d, %d bytes", r.code, len(r.stdout))
		}
	}
	// Nothing went to the local store.
	r := casRun(t, nil, local, "cas", "stat", "--json")
	if !strings.Contains(r.stdout, `"objects":0`) {
		t.Errorf("local store written by remote operations: %s", r.stdout)
	}
	r = casRun(t, nil, local, "cas", "stat", "--json", "--from", remote)
	var st map[string]int64
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st["objects"] != 3 || st["dedup_saved"] == 0 {
		t.Errorf("stat --from: %v %v\n%s", st, err, r)
	}

	absent := strings.Repeat("ab", 32)
	wantCode(t, casRun(t, nil, local, "cas", "get", absent, filepath.Join(dir, "x"), "--from", remote), 1, "get absent --from")
	wantCode(t, casRun(t, nil, local, "cas", "has", absent, "--from", remote), 1, "has absent --from")
	wantCode(t, casRun(t, []byte("x"), local, "cas", "put", "-", "xfer://"+ro.addr), 2, "put to a read-only store")
	wantCode(t, casRun(t, nil, local, "cas", "stat", "--from", "xfer://"+plain.addr), 2, "stat of a server without a store")
	wantCode(t, casRun(t, nil, local, "cas", "stat", "--from", "xfer://127.0.0.1:1", "--connect-timeout", "2s"), 3, "stat of no server")
	wantCode(t, casRun(t, nil, local, "cas", "stat", "--from", "nosuchremote"), 2, "unknown remote")

	// A damaged object on the peer is refused by the receiving side.
	big := filepath.Join(dir, "damaged")
	writeRandom(t, big, 3<<20, 99)
	id := strings.TrimSpace(casRun(t, nil, local, "cas", "put", big, remote).stdout)
	flip(t, filepath.Join(peerStore, "objects", id[:2], id[2:]), 1<<20)
	out := filepath.Join(dir, "damaged-out")
	r = casRun(t, nil, local, "cas", "get", id, out, "--from", remote)
	wantCode(t, r, 1, "get of a damaged object --from")
	if !strings.Contains(r.stderr, "does not match") {
		t.Errorf("damaged get: %s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a damaged get --from left its output")
	}
}

// ramDir is a new directory in /dev/shm, where there is one (so that a
// benchmark measures xfer rather than the disk), removed when tb ends.
func ramDir(tb testing.TB, prefix string) string {
	tb.Helper()
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkCASPut puts one file (XFER_BENCH_CAS_MIB, default 2048 MiB, on
// /dev/shm) into a fresh store with `xfer cas put`, next to `b3sum
// --num-threads 1` of the same file: the target is put no slower than
// b3sum.
func BenchmarkCASPut(b *testing.B) {
	mib := int64(2048)
	if v, err := strconv.ParseInt(os.Getenv("XFER_BENCH_CAS_MIB"), 10, 64); err == nil && v > 0 {
		mib = v
	}
	dir := ramDir(b, "xfer-cas-put-")
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	// One pseudo-random 8 MiB block, repeated with its first byte changed.
	chunk := pattern.Bytes(8<<20, 88)
	for i := int64(0); i < mib/8; i++ {
		chunk[0] = byte(i)
		f.Write(chunk)
	}
	f.Close()
	b.Run("xfer-cas-put", func(b *testing.B) {
		b.SetBytes(mib << 20)
		for i := 0; b.Loop(); i++ {
			store := filepath.Join(dir, "store"+strconv.Itoa(i))
			cmd := exec.Command(xferBin, "cas", "put", "--cas", store, src)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			b.StopTimer()
			os.RemoveAll(store)
			b.StartTimer()
		}
	})
	b.Run("b3sum-1-thread", func(b *testing.B) {
		b3 := needTool(b, "b3sum", "the reference")
		b.SetBytes(mib << 20)
		for b.Loop() {
			if out, err := exec.Command(b3, "--num-threads", "1", src).CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
	})
}
