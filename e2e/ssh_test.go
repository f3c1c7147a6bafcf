package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sshHost is a real OpenSSH server on a 127.0.0.1 port chosen at run
// time, accepting one generated key for the current user.
type sshHost struct {
	port    string
	command string // --ssh-command that reaches it with the generated key
	dir     string
}

// startSSHD runs /usr/sbin/sshd for the test, or skips it when OpenSSH's
// server is not installed (CI installs it: scripts/deps.sh).
func startSSHD(t *testing.T) *sshHost {
	t.Helper()
	const sshd = "/usr/sbin/sshd"
	if _, err := os.Stat(sshd); err != nil {
		t.Skip("OpenSSH server not installed (/usr/sbin/sshd; Debian's openssh-server, installed by scripts/deps.sh)")
	}
	needTool(t, "ssh", "the client side of ssh:// locations")
	keygen := needTool(t, "ssh-keygen", "generating the test's keys")
	if os.Geteuid() == 0 {
		// sshd run as root wants its privilege-separation directory, which
		// the packaged service otherwise creates when it starts.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Skipf("sshd as root needs /run/sshd: %v", err)
		}
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		if r := runCmd(t, nil, keygen, "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)); r.code != 0 {
			t.Fatalf("ssh-keygen: %s", r)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	hostPub, err := os.ReadFile(filepath.Join(dir, "host.pub"))
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	fields := strings.Fields(string(hostPub))
	must(t, os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", port, fields[0], fields[1])), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "config"), 0o700))
	conf := strings.Join([]string{
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin prohibit-password",
		// xfer needs no forwarding: data goes to its own listener or
		// through its own relay.
		"AllowTcpForwarding no",
		"SetEnv XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"LogLevel ERROR",
	}, "\n") + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(conf), 0o600))
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"), "-p", port)
	p := startProc(t, cmd, func(string) {})
	t.Cleanup(func() { p.terminate(5 * time.Second) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if !p.alive() || time.Now().After(deadline) {
			t.Fatalf("sshd did not come up on 127.0.0.1:%s: %v\n%s", port, err, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &sshHost{port: port, dir: dir, command: sshCommand(dir, filepath.Join(dir, "user"))}
}

// sshCommand is the --ssh-command that logs in with key and trusts only
// the test's known_hosts.
func sshCommand(dir, key string) string {
	return "ssh -F /dev/null -i " + key + " -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=" +
		filepath.Join(dir, "known_hosts") + " -o StrictHostKeyChecking=yes"
}

// url is the ssh:// location of the absolute path p on h.
func (h *sshHost) url(p string) string { return "ssh://127.0.0.1:" + h.port + p }

// flags are the flags that reach h with the binary under test on the far
// side.
func (h *sshHost) flags() []string {
	return []string{"--ssh-command", h.command, "--xfer-path", xferBin}
}

// TestSSHDataPaths copies a tree to and back from a host reached through
// ssh, with the data direct over TCP and inside ssh: both trees arrive
// whole and the summary says which path the data took.
func TestSSHDataPaths(t *testing.T) {
	h := startSSHD(t)
	src := oddSource(t)
	writeRandom(t, filepath.Join(src, "big.bin"), 9<<20, 5)
	for _, tc := range []struct{ data, want string }{
		{"auto", "direct"},
		{"inline", "inline"},
	} {
		t.Run(tc.data, func(t *testing.T) {
			far := t.TempDir()
			args := append([]string{"copy", src, h.url(far + "/dst"), "--json", "--chunk-size", "1M", "--ssh-data", tc.data}, h.flags()...)
			r := xfer(t, args...)
			if r.code != 0 {
				t.Fatal(r)
			}
			_, s := jsonRun(t, r)
			if s.SSHData != tc.want {
				t.Errorf("push: ssh_data %q, want %q", s.SSHData, tc.want)
			}
			sameTree(t, src, filepath.Join(far, "dst"))
			back := filepath.Join(t.TempDir(), "back")
			args = append([]string{"copy", h.url(far + "/dst"), back, "--chunk-size", "1M", "--ssh-data", tc.data}, h.flags()...)
			r = xfer(t, args...)
			if r.code != 0 {
				t.Fatal(r)
			}
			if !strings.Contains(r.stderr+r.stdout, map[string]string{"direct": "data direct over TCP", "inline": "data inside ssh"}[tc.want]) {
				t.Errorf("pull: the summary does not say how the data went:\n%s", r)
			}
			sameTree(t, src, back)
			farSidesGone(t)
		})
	}
}

// farSidesGone waits (bounded) until no `xfer serve --stdio` of the
// binary under test runs any more and none left its socket directory: a
// far side ends with its ssh connection.
func farSidesGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			if args := strings.Split(string(b), "\x00"); len(args) > 2 && args[0] == xferBin && args[1] == "serve" && strings.HasPrefix(args[2], "--stdio") {
				left = append(left, p)
			}
		}
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "xfer-stdio-*"))
		if len(left) == 0 && len(dirs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("far sides still running or their socket directories left 10s after the run: %v %v", left, dirs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSSHRefusals: what keeps a transfer from starting on the far side
// is one line naming the cause, with exit code 3, and nothing is written.
func TestSSHRefusals(t *testing.T) {
	h := startSSHD(t)
	src := fileTree(t, map[string]string{"a.txt": "a"})
	// A far-side "xfer" that announces protocol version 99.
	hello, _ := json.Marshal(map[string]any{"proto": "xfer-stdio", "version": 99, "data_addr": "127.0.0.1:9", "token": "00"})
	frame := append([]byte{7, 0, 0, 0, 0, 0, 0, 0}, hello...)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(hello)))
	var esc strings.Builder
	for _, b := range frame {
		fmt.Fprintf(&esc, "\\%03o", b)
	}
	future := filepath.Join(t.TempDir(), "xfer-future")
	must(t, os.WriteFile(future, []byte("#!/bin/sh\nprintf '"+esc.String()+"'\nsleep 1\n"), 0o755))
	// A far-side "xfer" from before serve --stdio, as cobra refuses it.
	older := filepath.Join(t.TempDir(), "xfer-older")
	must(t, os.WriteFile(older, []byte("#!/bin/sh\necho 'Error: unknown flag: --stdio' >&2\nexit 2\n"), 0o755))
	strangerDir := t.TempDir() // an empty known_hosts: the host key is unknown
	must(t, os.WriteFile(filepath.Join(strangerDir, "known_hosts"), nil, 0o600))
	otherKey := filepath.Join(t.TempDir(), "other")
	if r := runCmd(t, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", otherKey); r.code != 0 {
		t.Fatal(r)
	}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"missing binary", []string{"--ssh-command", h.command, "--xfer-path", "/nonexistent/xfer"}, "xfer not found on 127.0.0.1: install it or pass --xfer-path"},
		{"other protocol version", []string{"--ssh-command", h.command, "--xfer-path", future}, "xfer on 127.0.0.1 speaks protocol version 99"},
		{"release without serve --stdio", []string{"--ssh-command", h.command, "--xfer-path", older}, "xfer on 127.0.0.1 does not know serve --stdio"},
		{"unknown key", []string{"--ssh-command", sshCommand(h.dir, otherKey), "--xfer-path", xferBin}, "Permission denied"},
		{"unknown host key", []string{"--ssh-command", sshCommand(strangerDir, filepath.Join(h.dir, "user")), "--xfer-path", xferBin}, "Host key verification failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			far := t.TempDir()
			r := xfer(t, append([]string{"copy", src, h.url(far + "/dst")}, tc.flags...)...)
			if r.code != 3 {
				t.Fatalf("exit %d, want 3\n%s", r.code, r)
			}
			msg := strings.TrimSpace(r.stderr)
			t.Logf("%s", msg)
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Errorf("want one line with %q, got:\n%s", tc.want, msg)
			}
			if entries, _ := os.ReadDir(far); len(entries) != 0 {
				t.Errorf("the far side got %v", entries)
			}
		})
	}
}

// sshChildren lists the ssh processes pid started.
func sshChildren(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(c)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n)); strings.TrimSpace(string(comm)) == "ssh" {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestSSHKilledConnectionResumes kills the ssh connection of a copy
// mid-file: the run fails as a lost peer, and the next run resumes the
// partial file, sending little more than what was missing.
func TestSSHKilledConnectionResumes(t *testing.T) {
	const size, chunk, streams = 48 << 20, 1 << 20, 4
	h := startSSHD(t)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), size, 8)
	far := t.TempDir()
	dst := filepath.Join(far, "dst")
	run := startXfer(t, append([]string{"copy", src, h.url(dst), "--chunk-size", "1M", "--streams", "4",
		"--bwlimit", "8M", "--retries", "0", "-q"}, h.flags()...)...)
	deadline := time.Now().Add(30 * time.Second)
	for journaledBytes(t, dst, chunk) < 4*chunk {
		if time.Now().After(deadline) {
			t.Fatalf("no chunk journaled on the far side within 30s\n%s", run.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	kids := sshChildren(run.cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatal("the copy runs no ssh process")
	}
	for _, k := range kids {
		syscall.Kill(k, syscall.SIGKILL)
	}
	if r := run.wait(t); r.code != 3 {
		t.Fatalf("the run whose ssh was killed: exit %d, want 3 (peer lost)\n%s", r.code, r)
	}
	if _, err := os.Stat(filepath.Join(dst, "big.bin")); err == nil {
		t.Fatal("a file stands under its final name after the killed run")
	}
	resumeCopy(t, src, h.url(dst), dst, size, chunk, streams, h.flags()...)
	sameTree(t, src, dst)
}

// TestSSHThirdParty copies between two ssh:// locations: the source's far
// side pushes straight to the destination's, with the destination's
// ticket.
func TestSSHThirdParty(t *testing.T) {
	h := startSSHD(t)
	src := oddSource(t)
	writeRandom(t, filepath.Join(src, "big.bin"), 5<<20, 3)
	a, b := t.TempDir(), t.TempDir()
	r := xfer(t, "copy", src, filepath.Join(a, "src"))
	if r.code != 0 {
		t.Fatal(r)
	}
	r = xfer(t, append([]string{"copy", h.url(a + "/src"), h.url(b + "/dst"), "--json", "--chunk-size", "1M"}, h.flags()...)...)
	if r.code != 0 {
		t.Fatal(r)
	}
	_, s := jsonRun(t, r)
	if s.SSHData != "direct" || s.FilesTransferred == 0 {
		t.Errorf("summary: ssh_data %q, %d files; want direct and the tree", s.SSHData, s.FilesTransferred)
	}
	sameTree(t, src, filepath.Join(b, "dst"))
	// Inline, the destination opens no network port the source could
	// push to.
	r = xfer(t, append([]string{"copy", h.url(a + "/src"), h.url(b + "/inline"), "--ssh-data", "inline"}, h.flags()...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "--ssh-data=inline does not open") {
		t.Errorf("host to host with --ssh-data=inline: want exit 2 and why\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(b, "inline")); err == nil {
		t.Error("the refused copy created its destination")
	}
}

// TestSSHNamedRemote: a remote of type ssh saved with `xfer remote add`
// stands for its directory on the far side; NAME:SUB is beneath it.
func TestSSHNamedRemote(t *testing.T) {
	h := startSSHD(t)
	far := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(far, "base"), 0o755))
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir()}
	if r := xferEnv(t, env, "remote", "add", "lab", h.url(far+"/base")); r.code != 0 || !strings.Contains(r.stdout, h.url(far+"/base")) {
		t.Fatal(r)
	}
	src := fileTree(t, map[string]string{"a.txt": "alpha", "d/b.txt": "beta"})
	// The ssh settings come from XFER_* as well as from flags.
	r := xferEnv(t, append(env, "XFER_SSH_COMMAND="+h.command, "XFER_XFER_PATH="+xferBin), "copy", src, "lab:sub")
	if r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(far, "base/sub"))
	r = xferEnv(t, env, append([]string{"copy", "lab:sub/d/b.txt", filepath.Join(far, "one")}, h.flags()...)...)
	if got, _ := os.ReadFile(filepath.Join(far, "one/b.txt")); r.code != 0 || string(got) != "beta" {
		t.Fatalf("single file from lab:sub/d/b.txt: %q\n%s", got, r)
	}
	// rsync's HOST:PATH form (the port then comes from the ssh command).
	if r := xferEnv(t, env, "remote", "add", "lab2", "--ssh", "127.0.0.1:"+far+"/base"); r.code != 0 {
		t.Fatal(r)
	}
	r = xferEnv(t, env, "copy", "lab2:sub", filepath.Join(far, "two"), "--ssh-command", h.command+" -p "+h.port, "--xfer-path", xferBin)
	if r.code != 0 {
		t.Fatal(r)
	}
	sameTree(t, src, filepath.Join(far, "two"))
	if r := xferEnv(t, env, "remote", "add", "lab3", "--ssh", "127.0.0.1:/x", "--token-file", "/etc/hostname"); r.code != 2 || !strings.Contains(r.stderr, "does not apply") {
		t.Errorf("--token-file with --ssh: want exit 2 saying it does not apply\n%s", r)
	}
}

// TestSSHFallsBackInline runs the client in a network namespace of its
// own, where the far side's listener cannot be reached while ssh (entered
// into the test's namespace) still can: auto carries the data inside ssh
// instead, and direct fails with one line.
func TestSSHFallsBackInline(t *testing.T) {
	h := startSSHD(t)
	unshare := needTool(t, "unshare", "a client that cannot reach the far side's listener")
	nsenter := needTool(t, "nsenter", "ssh reaching sshd from that client")
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if r := runCmd(t, nil, unshare, "-n", "true"); r.code != 0 {
		t.Skipf("cannot make a network namespace here: %s", r)
	}
	command := fmt.Sprintf("%s --net=/proc/%d/ns/net %s", nsenter, os.Getpid(), h.command)
	src := fileTree(t, map[string]string{"a.txt": "alpha", "d/b.txt": "beta"})
	for _, tc := range []struct {
		data string
		code int
	}{{"auto", 0}, {"direct", 3}} {
		t.Run(tc.data, func(t *testing.T) {
			far := t.TempDir()
			args := []string{"-n", xferBin, "copy", src, h.url(far + "/dst"), "--ssh-data", tc.data, "--ssh-command", command, "--xfer-path", xferBin}
			if tc.code == 0 {
				args = append(args, "--json")
			}
			r := runCmd(t, nil, unshare, args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
			if tc.code != 0 {
				if msg := strings.TrimSpace(r.stderr); strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "data stream 0: the far side's listener 127.0.0.1:") || !strings.Contains(msg, "(--ssh-data=direct)") {
					t.Errorf("want one line naming the stream, the far side's listener and --ssh-data=direct, got:\n%s", r)
				}
				return
			}
			if _, s := jsonRun(t, r); s.SSHData != "inline" {
				t.Errorf("ssh_data %q, want inline", s.SSHData)
			}
			sameTree(t, src, filepath.Join(far, "dst"))
		})
	}
}
