package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/cas"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
	ctx := context.Background()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	// More than the whole budget is capped at the whole budget.
	got := make(chan struct{})
	go func() { b.acquire(ctx, 1000); close(got) }()
	select {
	case <-got:
		t.Fatal("acquired beyond the budget")
	case <-time.After(20 * time.Millisecond):
	}
	// A waiter that gives up takes nothing.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b.acquire(cctx, 50); err == nil {
		t.Fatal("acquired 50 with 40 free")
	}
	b.release(60)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken")
	}
	b.release(1000)
	if b.free != 100 || len(b.waiters) != 0 {
		t.Fatalf("budget not whole again: free %d, %d waiters", b.free, len(b.waiters))
	}
}

func TestVerifiedSet(t *testing.T) {
	v := newVerifiedSet(16)
	m1, m2 := &mapping{}, &mapping{}
	for i := range 40 {
		v.add(cas.ID{byte(i)}, m1, int64(i))
		if v.c.Len() > 16 {
			t.Fatalf("%d entries, limit 16", v.c.Len())
		}
	}
	v.add(cas.ID{1}, m1, 64)
	if !v.has(cas.ID{1}, m1, 64) || v.has(cas.ID{1}, m2, 64) || v.has(cas.ID{1}, m1, 0) {
		t.Fatal("verified set matches on id alone")
	}
	off := newVerifiedSet(-1)
	off.add(cas.ID{1}, m1, 0)
	if off.has(cas.ID{1}, m1, 0) {
		t.Fatal("a disabled set remembers")
	}
}

func TestLogFileReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.log")
	l, err := OpenLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write([]byte("one\n"))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("two\n"))
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("three\n"))
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	if string(old) != "one\ntwo\n" || string(cur) != "three\n" {
		t.Fatalf("rotated %q, current %q", old, cur)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o640 {
		t.Errorf("log file mode %v", st.Mode())
	}
	if _, err := OpenLogFile(filepath.Join(dir, "missing", "x.log")); err == nil || !strings.Contains(err.Error(), "log file") {
		t.Errorf("log file in a missing directory: %v", err)
	}
}
