package mover_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp"
	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/pattern"
	"github.com/xfer-io/xfer/internal/peertest"
	"github.com/xfer-io/xfer/mover"
)

func idOf(b []byte) string {
	id := cas.Sum(b)
	return hex.EncodeToString(id[:])
}

func TestClientOps(t *testing.T) {
	d := peertest.Daemon(t, daemon.Config{})
	remote, peerStore := peertest.CAS(t)
	ctx := context.Background()
	c := d.Client(t)
	for i, n := range []int{0, 1, 4096, cas.MaxPacked, cas.MaxPacked + 1, 3<<20 + 5} {
		data := pattern.Bytes(n, uint64(i))
		want := idOf(data)
		id, err := c.Write(ctx, data)
		if err != nil || id != want {
			t.Fatalf("write %d bytes: %q %v, want %s", n, id, err, want)
		}
		if err := c.WriteID(ctx, want, data); err != nil {
			t.Fatalf("write %d bytes with its id: %v", n, err)
		}
		got, err := c.Read(ctx, id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes: %v, equal %v", n, err, bytes.Equal(got, data))
		}
		if n > 10 {
			part, err := c.ReadRange(ctx, id, 3, 7)
			if err != nil || !bytes.Equal(part, data[3:10]) {
				t.Fatalf("read range of %d bytes: %v", n, err)
			}
		}
		mapped, err := c.ReadMapped(ctx, id)
		if err != nil || !bytes.Equal(mapped, data) {
			t.Fatalf("mapped read %d bytes: %v, equal %v", n, err, bytes.Equal(mapped, data))
		}
		if sz, err := c.Size(ctx, id); err != nil || sz != int64(n) {
			t.Fatalf("size: %d %v", sz, err)
		}
		if err := c.Send(ctx, id, remote); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		cid, _ := cas.ParseID(id)
		if ok, _ := peerStore.Has(cid); !ok {
			t.Fatalf("send %d bytes: not on the peer", n)
		}
		if err := d.Store.Remove(ctx, cid); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Has(ctx, id); ok {
			t.Fatal("has after remove")
		}
		if err := c.Fetch(ctx, id, remote); err != nil {
			t.Fatalf("fetch %d bytes: %v", n, err)
		}
		if got, err := c.Read(ctx, id); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read after fetch: %v", err)
		}
	}
	st, err := c.Stat(ctx)
	if err != nil || st.Objects != 6 {
		t.Fatalf("stat: %+v %v", st, err)
	}
}

func TestClientErrors(t *testing.T) {
	d := peertest.Daemon(t, daemon.Config{})
	ctx := context.Background()
	c := d.Client(t)
	absent := idOf([]byte("absent"))
	if _, err := c.Read(ctx, absent); !errors.Is(err, mover.ErrNotFound) {
		t.Errorf("read absent: %v", err)
	}
	if err := c.WriteID(ctx, absent, []byte("other")); !errors.Is(err, mover.ErrCorrupt) {
		t.Errorf("write with a wrong id: %v", err)
	}
	if err := c.Fetch(ctx, absent, "xfer://127.0.0.1:1"); !errors.Is(err, mover.ErrPeer) {
		t.Errorf("fetch from nowhere: %v", err)
	}
	if _, err := c.Read(ctx, "nothex"); err == nil {
		t.Error("read of a bad id accepted")
	}
	// A corrupted packed object is refused, never returned.
	data := pattern.Bytes(4096, 9)
	id, _ := c.Write(ctx, data)
	cid, _ := cas.ParseID(id)
	loc, _ := d.Store.Locate(cid)
	f, _ := os.OpenFile(loc.Path, os.O_RDWR, 0)
	f.WriteAt([]byte{^data[100]}, loc.Offset+100)
	f.Close()
	if _, err := c.Read(ctx, id); !errors.Is(err, mover.ErrCorrupt) {
		t.Errorf("read of a corrupt object: %v", err)
	}
	if _, err := c.ReadMapped(ctx, id); !errors.Is(err, mover.ErrCorrupt) {
		t.Errorf("mapped read of a corrupt object: %v", err)
	}
}

func TestBatch(t *testing.T) {
	d := peertest.Daemon(t, daemon.Config{})
	ctx := context.Background()
	c := d.Client(t)
	var reqs []mover.Request
	var want [][]byte
	for i := range 50 {
		data := pattern.Bytes(100+i, uint64(i))
		id, err := c.Write(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, mover.Request{Op: mover.OpRead, ID: id})
		want = append(want, data)
	}
	newData := pattern.Bytes(777, 200)
	reqs = append(reqs,
		mover.Request{Op: mover.OpWrite, Data: newData},
		mover.Request{Op: mover.OpHas, ID: idOf([]byte("absent"))},
		mover.Request{Op: mover.OpBatch},
		mover.Request{Op: 0x42},
		mover.Request{Op: mover.OpStat},
	)
	resps, err := c.Batch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if resps[i].Status != mover.StatusOK || !bytes.Equal(resps[i].Data, want[i]) {
			t.Fatalf("batch read %d: %v", i, resps[i].Err(mover.OpRead, reqs[i].ID))
		}
	}
	tail := resps[len(want):]
	if tail[0].Status != mover.StatusOK || string(tail[0].Data) != idOf(newData) {
		t.Errorf("batch write: %v %q", tail[0].Status, tail[0].Data)
	}
	if tail[1].Status != mover.StatusNotFound {
		t.Errorf("batch has absent: %v", tail[1].Status)
	}
	if tail[2].Status != mover.StatusError || tail[3].Status != mover.StatusError {
		t.Errorf("nested batch / unknown op: %v %v", tail[2].Status, tail[3].Status)
	}
	// The write and the stat of one batch run concurrently.
	if st, err := mover.DecodeStats(tail[4].Data); err != nil || st.Objects < 50 || st.Objects > 51 {
		t.Errorf("batch stat: %+v %v", st, err)
	}
}

func TestContextCancel(t *testing.T) {
	d := peertest.Daemon(t, daemon.Config{})
	c := d.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	// A fetch from a blackhole peer outlives the deadline.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	err := c.Fetch(ctx, idOf([]byte("x")), "xfer://"+ln.Addr().String())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch past its deadline: %v", err)
	}
	if _, err := c.Stat(context.Background()); err != nil {
		t.Fatalf("client unusable after a cancelled request: %v", err)
	}
}

// TestReadMappedFallback checks that ReadMapped really maps (a second call
// returns the same read-only bytes without a request) and that it falls back
// to bytes through the socket where the daemon's file cannot be mapped from
// here: NoMap, and a pack that is not the file the daemon mapped (as when
// the client sees another file system at the same path).
func TestReadMappedFallback(t *testing.T) {
	d := peertest.Daemon(t, daemon.Config{})
	ctx := context.Background()
	c := d.Client(t)
	data := pattern.Bytes(4096, 77)
	id, err := c.Write(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := c.ReadMapped(ctx, id)
	if err != nil || !bytes.Equal(m1, data) {
		t.Fatalf("mapped read: %v", err)
	}
	m2, err := c.ReadMapped(ctx, id)
	if err != nil || &m1[0] != &m2[0] {
		t.Fatalf("second mapped read did not return the mapping: %v", err)
	}

	nomap, err := mover.DialContext(ctx, d.Path, mover.Options{NoMap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer nomap.Close()
	b1, err1 := nomap.ReadMapped(ctx, id)
	b2, err2 := nomap.ReadMapped(ctx, id)
	if err1 != nil || err2 != nil || !bytes.Equal(b1, data) || !bytes.Equal(b2, data) || &b1[0] == &b2[0] {
		t.Fatalf("NoMap: %v %v, want the bytes through the socket each time", err1, err2)
	}

	// Replace the pack by a copy (a new inode at the same path): the daemon
	// keeps serving from its mapping of the old file and answers with the
	// old file's identity, which the client cannot find, so it must fall
	// back to the bytes.
	cid, _ := cas.ParseID(id)
	loc, err := d.Store.Locate(cid)
	if err != nil || !loc.Packed {
		t.Fatalf("locate: %+v %v", loc, err)
	}
	pack, err := os.ReadFile(loc.Path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := loc.Path + ".copy"
	if err := os.WriteFile(tmp, pack, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, loc.Path); err != nil {
		t.Fatal(err)
	}
	fresh, err := mover.Dial(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	f1, err1 := fresh.ReadMapped(ctx, id)
	f2, err2 := fresh.ReadMapped(ctx, id)
	if err1 != nil || err2 != nil || !bytes.Equal(f1, data) || !bytes.Equal(f2, data) {
		t.Fatalf("mapped read of a file the client cannot map: %v %v", err1, err2)
	}
	if &f1[0] == &f2[0] {
		t.Fatal("mapped read of another inode returned a mapping")
	}
}
