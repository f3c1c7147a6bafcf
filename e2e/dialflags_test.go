package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonIouringEntriesDeprecated: `xfer daemon --iouring-entries N`,
// the daemon's former name for --uring-entries, still starts the daemon
// (systemd units give it), with pflag's deprecation notice on stderr and
// nothing on stdout; XFER_IOURING_ENTRIES and the config key too; a value
// out of range is refused as before, naming the flag as given.
func TestDaemonIouringEntriesDeprecated(t *testing.T) {
	const flagNotice = "Flag --iouring-entries has been deprecated, use --uring-entries instead"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "xfer.yaml")
	writeFile(t, cfg, "iouring-entries: 64\n", 0o600)
	tests := []struct {
		name   string
		args   []string
		env    []string
		notice string // "" for none
	}{
		{"--iouring-entries 64", []string{"--iouring-entries", "64"}, nil, flagNotice},
		{"--uring-entries 64", []string{"--uring-entries", "64"}, nil, ""},
		{"XFER_IOURING_ENTRIES=64", nil, []string{"XFER_IOURING_ENTRIES=64"}, "xfer: warning: XFER_IOURING_ENTRIES is deprecated: use XFER_URING_ENTRIES"},
		{"IOURING_ENTRIES=64", nil, []string{"IOURING_ENTRIES=64"}, ""},
		{"iouring-entries: 64", []string{"--config", cfg}, nil, `key "iouring-entries" is deprecated: use "uring-entries"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, "m"+string(rune('a'+i))+".sock")
			args := append([]string{"daemon", "--socket", sock, "--cas", filepath.Join(dir, "cas")}, tt.args...)
			cmd := exec.Command(xferBin, args...)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			d, ok := runDaemonCmd(t, cmd, tt.env, nil)
			if !ok {
				t.Fatalf("daemon %v did not start (exit %d):\n%s", tt.args, d.code, d.log())
			}
			if _, err := d.client(t).Write(t.Context(), []byte("still works")); err != nil {
				t.Fatalf("write through the daemon: %v\n%s", err, d.log())
			}
			if code := d.stop(t); code != 0 {
				t.Errorf("exit %d on SIGTERM, want 0\n%s", code, d.log())
			}
			if tt.notice == "" && strings.Contains(d.log(), "deprecated") || !strings.Contains(d.log(), tt.notice) {
				t.Errorf("stderr:\n%s\nwant notice %q", d.log(), tt.notice)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing (notices go to stderr)", stdout.String())
			}
		})
	}
	r := xfer(t, "daemon", "--socket", filepath.Join(dir, "x.sock"), "--cas", filepath.Join(dir, "cas"), "--iouring-entries", "99999")
	wantCode(t, r, 2, "--iouring-entries 99999")
	if want := `xfer: --iouring-entries "99999": want a whole number from 0 to 32768`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
}

// TestCASTakesDialFlags: the cas commands that reach a peer take the same
// dial flags as copy, --uring-entries included (they had no way to size
// the ring before), and put and get an object over the uring transport.
func TestCASTakesDialFlags(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, t.TempDir(), "--cas", filepath.Join(dir, "peer"))
	proto := "tcp"
	for _, p := range usableTransports(t) {
		if p == "uring" {
			proto = p
		}
	}
	file := filepath.Join(dir, "obj")
	writeRandom(t, file, 3<<20+5, 7)
	dial := []string{"--proto", proto, "--streams", "3", "--connect-timeout", "10s", "--timeout", "30s", "--uring-entries", "64"}
	r := casRun(t, nil, nil, append([]string{"cas", "put", file, "xfer://" + srv.addr}, dial...)...)
	wantCode(t, r, 0, "cas put --uring-entries")
	id := strings.TrimSpace(r.stdout)
	if id != refSum(t, file) {
		t.Fatalf("put printed %q, want %s", id, refSum(t, file))
	}
	out := filepath.Join(dir, "back")
	r = casRun(t, nil, []string{"IOURING_ENTRIES=32"}, append([]string{"cas", "get", id, out, "--from", "xfer://" + srv.addr}, dial[:len(dial)-2]...)...)
	wantCode(t, r, 0, "cas get with IOURING_ENTRIES")
	if refSum(t, out) != id {
		t.Fatalf("got back content of another id")
	}
}
