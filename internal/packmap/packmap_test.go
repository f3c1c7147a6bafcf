package packmap_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/packmap"
)

// TestSet checks that a file is mapped once while its mapping covers what
// is asked, mapped again once it has grown past it, that Check can refuse
// the file, and that Close ends it.
func TestSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pack")
	if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := packmap.NewSet[string]()
	exact, err := s.Get("exact", packmap.Want{Path: path, Need: 5})
	if err != nil || string(exact.Data) != "hello" {
		t.Fatalf("Get: %q, %v", exact.Data, err)
	}
	grow, err := s.Get("grow", packmap.Want{Path: path, Need: 5, Grow: true})
	if err != nil || len(grow.Data) < packmap.Slack || string(grow.Data[:5]) != "hello" {
		t.Fatalf("Get with Grow: %d bytes, %v", len(grow.Data), err)
	}
	if again, _ := s.Get("grow", packmap.Want{Path: path, Need: 5, Grow: true}); again != grow {
		t.Error("a mapping that covers the request was made again")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(" world"))
	f.Close()
	bigger, err := s.Get("exact", packmap.Want{Path: path, Need: 11})
	if err != nil || bigger == exact || string(bigger.Data) != "hello world" || string(exact.Data) != "hello" {
		t.Fatalf("Get past the old mapping: %q (old %q), %v", bigger.Data, exact.Data, err)
	}
	refused := errors.New("not this file")
	if _, err := s.Get("other", packmap.Want{Path: path, Need: 1, Check: func(dev, ino uint64, size int64) error {
		if dev == 0 && ino == 0 || size != 11 {
			t.Errorf("Check got dev %d ino %d size %d", dev, ino, size)
		}
		return refused
	}}); !errors.Is(err, refused) {
		t.Errorf("Get with a refusing Check: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("exact", packmap.Want{Path: path, Need: 1}); !errors.Is(err, packmap.ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
}

func TestCache(t *testing.T) {
	c := packmap.NewCache[int, int](16)
	for i := range 40 {
		c.Put(i, i)
		if c.Len() > 16 {
			t.Fatalf("%d entries, limit 16", c.Len())
		}
	}
	if v, ok := c.Get(39); !ok || v != 39 {
		t.Errorf("the last entry put: %d, %v", v, ok)
	}
	c.Clear()
	if c.Len() != 0 {
		t.Error("Clear left entries")
	}
	off := packmap.NewCache[int, int](0)
	off.Put(1, 1)
	if _, ok := off.Get(1); ok {
		t.Error("a cache of size 0 remembers")
	}
}

func TestSum(t *testing.T) {
	b := []byte("some object")
	got, err := packmap.Sum(b)
	if err != nil || got != cas.Sum(b) {
		t.Fatalf("Sum = %x, %v; want cas.Sum", got, err)
	}
}
