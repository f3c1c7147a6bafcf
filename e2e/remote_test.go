package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoteAddThenCopy checks that a remote written by `remote add` is
// what copy uses: a real xfer serve, a real copy to NAME:PATH (the remote's
// name in another case).
func TestRemoteAddThenCopy(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello remote\n"), 0o644))
	s := startServer(t, root)
	home := []string{"XDG_CONFIG_HOME=" + t.TempDir()} // one config file for both runs
	if r := xferEnv(t, home, "remote", "add", "Lab", "xfer://"+s.addr); r.code != 0 {
		t.Fatalf("remote add:\n%s", r)
	}
	if r := xferEnv(t, home, "copy", "-q", src, "lab:/incoming"); r.code != 0 {
		t.Fatalf("copy to lab:/incoming:\n%s", r)
	}
	got, err := os.ReadFile(filepath.Join(root, "incoming", "hello.txt"))
	if err != nil || string(got) != "hello remote\n" {
		t.Errorf("served tree holds %q, %v", got, err)
	}
}
