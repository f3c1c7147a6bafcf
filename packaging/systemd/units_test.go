// Package systemd_test checks the systemd units, the environment file and
// the sysusers.d/tmpfiles.d snippets shipped in the xfer packages.
package systemd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/cmd"
)

var units = []string{"xfer-serve.service", "xfer-daemon.socket", "xfer-daemon.service"}

// TestVerify runs systemd-analyze verify on the units, with ExecStart's
// /usr/bin/xfer pointed at an executable that exists here.
func TestVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	args := []string{"verify", "--man=no"}
	for _, u := range units {
		data := strings.ReplaceAll(mustRead(t, u), "/usr/bin/xfer", "/bin/true")
		if err := os.WriteFile(filepath.Join(dir, u), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(dir, u))
	}
	out, err := exec.Command(sa, args...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestSysusersTmpfiles applies the snippets to a scratch root.
func TestSysusersTmpfiles(t *testing.T) {
	su, err1 := exec.LookPath("systemd-sysusers")
	tf, err2 := exec.LookPath("systemd-tmpfiles")
	if err1 != nil || err2 != nil {
		t.Skip("systemd-sysusers or systemd-tmpfiles is not installed")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	abs := func(f string) string { p, _ := filepath.Abs(f); return p }
	if out, err := exec.Command(su, "--root="+root, abs("xfer.sysusers")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if !regexp.MustCompile(`(?m)^xfer:x:\d+:\d+:xfer data mover:/srv/xfer:/usr/sbin/nologin$`).Match(passwd) {
		t.Errorf("no xfer user in /etc/passwd:\n%s", passwd)
	}
	if out, err := exec.Command(tf, "--root="+root, "--create", abs("xfer.tmpfiles")).CombinedOutput(); err != nil {
		t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(root, "srv", "xfer")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
		t.Errorf("/srv/xfer: %v %v, want a directory with mode 0750", st, err)
	}
}

// TestVariablesAreFlags checks that every XFER_* variable the units and the
// environment file mention is a flag of xfer serve (or a global flag), so
// a renamed flag cannot leave them silently ignored.
func TestVariablesAreFlags(t *testing.T) {
	root := cmd.CommandTree()
	serve, _, err := root.Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	collect := func(fs *pflag.FlagSet) { fs.VisitAll(func(f *pflag.Flag) { flags[f.Name] = true }) }
	collect(serve.Flags())
	collect(root.PersistentFlags())
	varRE := regexp.MustCompile(`XFER_[A-Z0-9_]+`)
	for _, f := range []string{"xfer.default", "xfer-serve.service"} {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for n := 1; sc.Scan(); n++ {
			for _, v := range varRE.FindAllString(sc.Text(), -1) {
				name := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(v, "XFER_")), "_", "-")
				if !flags[name] {
					t.Errorf("%s:%d: %s is not a flag of xfer serve (no --%s)", f, n, v, name)
				}
			}
		}
		fh.Close()
	}
	if !strings.Contains(mustRead(t, "xfer-serve.service"), "\nExecStart=/usr/bin/xfer serve\n") {
		t.Error("xfer-serve.service does not run xfer serve")
	}
}

func mustRead(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
