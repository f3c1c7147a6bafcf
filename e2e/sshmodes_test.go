package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSSHKeepsWhatRsyncKeeps: a copy to an ssh:// location keeps what
// `rsync -a -e ssh` keeps on the same host: modes exactly (whatever the
// ssh session's umask), set-uid, set-gid and sticky bits, and, when the
// ssh user is root, owners, groups and device files. The far side is the
// ssh user's own `xfer serve --stdio`, not a shared server with a
// policy. Each xfer run twice; the second changes nothing.
func TestSSHKeepsWhatRsyncKeeps(t *testing.T) {
	needTool(t, "rsync", "the reference this test compares with")
	h := startSSHD(t)
	src := t.TempDir()
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"setuid", 0o755 | os.ModeSetuid},
		{"open", 0o777},
		{"private", 0o600},
		{"group/f", 0o664},
		{"sticky/f", 0o644},
	} {
		p := filepath.Join(src, f.path)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(f.path), 0o644))
		must(t, os.Chmod(p, f.mode))
	}
	must(t, os.Chmod(filepath.Join(src, "group"), 0o775|os.ModeSetgid))
	must(t, os.Chmod(filepath.Join(src, "sticky"), 0o777|os.ModeSticky))
	must(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o620))
	if nobody := lookupNobody(); os.Geteuid() == 0 && nobody != nil {
		must(t, os.Chown(filepath.Join(src, "open"), nobody.uid, nobody.gid))
		must(t, os.Lchown(filepath.Join(src, "group"), 0, nobody.gid))
		must(t, syscall.Mknod(filepath.Join(src, "null"), syscall.S_IFCHR|0o640, 1<<8|3))
	}
	// Times in the past: rsync leaves a directory's or a special file's
	// mtime alone when it is in the same second as the source's.
	past := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, p := range []string{"setuid", "open", "private", "group/f", "sticky/f", "fifo", "null", "group", "sticky", "."} {
		if err := os.Chtimes(filepath.Join(src, p), past, past); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	base := t.TempDir()
	ref, got := filepath.Join(base, "rsync"), filepath.Join(base, "xfer")
	if r := runCmd(t, nil, "rsync", "-a", "-e", h.command+" -p "+h.port, src+"/", "127.0.0.1:"+ref+"/"); r.code != 0 {
		t.Fatalf("rsync -a -e ssh: %s", r)
	}
	want := scanTree(t, ref)
	var first ftree
	for run := 1; run <= 2; run++ {
		r := xfer(t, append([]string{"copy", src, h.url(got), "-q"}, h.flags()...)...)
		if r.code != 0 {
			t.Fatalf("copy to ssh://, run %d: %s", run, r)
		}
		if d := diffTrees(want, scanTree(t, got), cmpOpts{ref: "rsync -a -e ssh", got: "xfer"}); len(d) > 0 {
			t.Errorf("run %d: the ssh:// destination differs from rsync's:%s", run, report(d))
		}
		if run == 1 {
			first = scanTree(t, got)
		} else if d := diffTrees(first, scanTree(t, got), cmpOpts{ref: "run 1", got: "run 2", inodes: true}); len(d) > 0 {
			t.Errorf("the second run changed the destination:%s", report(d))
		}
	}
	// A far side told otherwise (as a forced command in authorized_keys
	// would be) narrows the modes again.
	wrapper := filepath.Join(t.TempDir(), "xfer-narrow")
	must(t, os.WriteFile(wrapper, []byte("#!/bin/sh\nexec "+xferBin+" \"$@\" --umask 022 --allow-setid=false\n"), 0o755))
	narrow := filepath.Join(base, "narrow")
	if r := xfer(t, "copy", src, h.url(narrow), "-q", "--ssh-command", h.command, "--xfer-path", wrapper); r.code != 0 {
		t.Fatalf("copy to ssh:// with a narrowing far side: %s", r)
	}
	for p, want := range map[string]os.FileMode{"setuid": 0o755, "open": 0o755, "private": 0o600} {
		if fi, err := os.Stat(filepath.Join(narrow, p)); err != nil || fi.Mode().Perm()|fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != want {
			t.Errorf("%s with --umask 022 --allow-setid=false on the far side: %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
}
