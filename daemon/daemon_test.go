package daemon_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp"
	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/peertest"
	"github.com/xfer-io/xfer/mover"
)

func frame(op mover.Op, id string, off, n uint64, data []byte) []byte {
	b, err := mover.AppendRequest(nil, &mover.Request{Op: op, ID: id, Offset: off, Len: n, Data: data})
	if err != nil {
		panic(err)
	}
	return b
}

// roundTrip writes raw bytes and reads one response; ok is false if the
// daemon closed the connection instead.
func roundTrip(t testing.TB, c net.Conn, raw []byte) (mover.Response, bool) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Write while reading: the daemon may answer before it read all (and
	// then close).
	wrote := make(chan struct{})
	go func() { c.Write(raw); close(wrote) }()
	defer func() { <-wrote }()
	var h [mover.ResponseHeaderSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return mover.Response{}, false
	}
	data := make([]byte, binary.LittleEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(c, data); err != nil {
		t.Fatalf("response data cut short: %v", err)
	}
	return mover.Response{Status: mover.Status(h[0]), Data: data}, true
}

// closed reports whether the daemon closed c.
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err := c.Read(b[:])
	return err == io.EOF || errors.Is(err, net.ErrClosed) || (err != nil && strings.Contains(err.Error(), "reset"))
}

func hexID(b []byte) string {
	id := cas.Sum(b)
	return hex.EncodeToString(id[:])
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed ^ byte(i>>8)
	}
	return b
}

func TestOps(t *testing.T) {
	e := peertest.Daemon(t, daemon.Config{})
	peer, peerStore := peertest.CAS(t)
	small, large := data(4096, 1), data(2<<20+3, 2)
	sid, lid := hexID(small), hexID(large)
	// medium is hashed while it arrives, in pieces and a short last one;
	// full fills a pack entry exactly, in whole pieces.
	medium, full := data(300<<10+5, 3), data(1<<20, 4)
	mid, fid := hexID(medium), hexID(full)
	absent := hexID([]byte("absent"))
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	c := e.Conn(t)
	tests := []struct {
		name   string
		req    []byte
		status mover.Status
		data   []byte // nil: not checked
		check  func(t *testing.T, r mover.Response)
	}{
		{"write small", frame(mover.OpWrite, "", 0, 0, small), mover.StatusOK, []byte(sid), nil},
		{"write large", frame(mover.OpWrite, "", 0, 0, large), mover.StatusOK, []byte(lid), nil},
		{"write with its id", frame(mover.OpWrite, sid, 0, 0, small), mover.StatusOK, []byte(sid), nil},
		{"write large with its id", frame(mover.OpWrite, lid, 0, 0, large), mover.StatusOK, []byte(lid), nil},
		{"write medium", frame(mover.OpWrite, "", 0, 0, medium), mover.StatusOK, []byte(mid), nil},
		{"write medium again", frame(mover.OpWrite, "", 0, 0, medium), mover.StatusOK, []byte(mid), nil},
		{"write medium with its id", frame(mover.OpWrite, mid, 0, 0, medium), mover.StatusOK, []byte(mid), nil},
		{"write medium with a wrong id", frame(mover.OpWrite, absent, 0, 0, data(300<<10+5, 5)), mover.StatusCorrupt, nil, nil},
		{"write medium with a bad id", frame(mover.OpWrite, "xyz", 0, 0, data(300<<10+5, 6)), mover.StatusError, nil, nil},
		{"write 1 MiB with its id", frame(mover.OpWrite, fid, 0, 0, full), mover.StatusOK, []byte(fid), nil},
		{"read medium", frame(mover.OpRead, mid, 0, 0, nil), mover.StatusOK, medium, nil},
		{"read 1 MiB", frame(mover.OpRead, fid, 0, 0, nil), mover.StatusOK, full, nil},
		{"write with a wrong id", frame(mover.OpWrite, absent, 0, 0, small), mover.StatusCorrupt, nil, nil},
		{"write large with a wrong id", frame(mover.OpWrite, absent, 0, 0, large), mover.StatusCorrupt, nil, nil},
		{"write upper-case id", frame(mover.OpWrite, strings.ToUpper(sid), 0, 0, small), mover.StatusOK, []byte(sid), nil},
		{"write empty", frame(mover.OpWrite, "", 0, 0, nil), mover.StatusOK, []byte(hexID(nil)), nil},
		{"read", frame(mover.OpRead, sid, 0, 0, nil), mover.StatusOK, small, nil},
		{"read range", frame(mover.OpRead, sid, 100, 50, nil), mover.StatusOK, small[100:150], nil},
		{"read past the end", frame(mover.OpRead, sid, 4000, 500, nil), mover.StatusOK, small[4000:], nil},
		{"read at the end", frame(mover.OpRead, sid, 4096, 0, nil), mover.StatusOK, []byte{}, nil},
		{"read beyond the end", frame(mover.OpRead, sid, 4097, 0, nil), mover.StatusError, nil, nil},
		{"read large", frame(mover.OpRead, lid, 0, 0, nil), mover.StatusOK, large, nil},
		{"read large range", frame(mover.OpRead, lid, 1<<20-5, 1<<20+7, nil), mover.StatusOK, large[1<<20-5 : 2<<20+2], nil},
		{"read absent", frame(mover.OpRead, absent, 0, 0, nil), mover.StatusNotFound, nil, nil},
		{"read bad id", frame(mover.OpRead, "xyz", 0, 0, nil), mover.StatusError, nil, nil},
		{"read with data", frame(mover.OpRead, sid, 0, 0, []byte("x")), mover.StatusError, nil, nil},
		{"read mapped", frame(mover.OpReadMapped, sid, 0, 0, nil), mover.StatusLocated, nil, func(t *testing.T, r mover.Response) {
			l, err := mover.DecodeLocation(r.Data)
			if err != nil || l.Kind != mover.LocPacked || l.Size != 4096 {
				t.Fatalf("location %+v %v", l, err)
			}
			b, err := os.ReadFile(l.Path)
			if err != nil || !bytes.Equal(b[l.Offset:l.Offset+l.Size], small) {
				t.Fatalf("location does not hold the object: %v", err)
			}
		}},
		{"read mapped large", frame(mover.OpReadMapped, lid, 0, 0, nil), mover.StatusLocated, nil, func(t *testing.T, r mover.Response) {
			l, err := mover.DecodeLocation(r.Data)
			if err != nil || l.Kind != mover.LocStandalone || l.Size != uint64(len(large)) || l.Offset != 0 {
				t.Fatalf("location %+v %v", l, err)
			}
		}},
		{"has", frame(mover.OpHas, sid, 0, 0, nil), mover.StatusOK, u64(4096), nil},
		{"has absent", frame(mover.OpHas, absent, 0, 0, nil), mover.StatusNotFound, nil, nil},
		{"stat", frame(mover.OpStat, "", 0, 0, nil), mover.StatusOK, nil, func(t *testing.T, r mover.Response) {
			st, err := mover.DecodeStats(r.Data)
			if err != nil || st.Objects != 5 || st.LargeObjects != 1 || st.DedupSaved == 0 {
				t.Fatalf("stats %+v %v", st, err)
			}
		}},
		{"stat object", frame(mover.OpStat, lid, 0, 0, nil), mover.StatusOK, append(u64(uint64(len(large))), mover.LocStandalone), nil},
		{"send", frame(mover.OpSend, sid, 0, 0, []byte(peer)), mover.StatusOK, []byte{}, nil},
		{"send large", frame(mover.OpSend, lid, 0, 0, []byte(peer)), mover.StatusOK, []byte{}, nil},
		{"send absent", frame(mover.OpSend, absent, 0, 0, []byte(peer)), mover.StatusNotFound, nil, nil},
		{"send without remote", frame(mover.OpSend, sid, 0, 0, nil), mover.StatusError, nil, nil},
		{"send to an unknown remote", frame(mover.OpSend, sid, 0, 0, []byte("nowhere")), mover.StatusError, nil, nil},
		{"send to an unreachable peer", frame(mover.OpSend, sid, 0, 0, []byte("xfer://127.0.0.1:1")), mover.StatusPeer, nil, nil},
		{"fetch present", frame(mover.OpFetch, sid, 0, 0, []byte(peer)), mover.StatusOK, []byte{}, nil},
		{"fetch absent on the peer", frame(mover.OpFetch, absent, 0, 0, []byte(peer)), mover.StatusNotFound, nil, nil},
		{"unknown op", frame(0x42, "", 0, 0, nil), mover.StatusError, nil, nil},
		{"mapped flag on write", frame(mover.OpWrite|mover.FlagMapped, "", 0, 0, []byte("x")), mover.StatusError, nil, nil},
		{"batch", frame(mover.OpBatch, "", 0, 0, bytes.Join([][]byte{
			frame(mover.OpRead, sid, 0, 10, nil),
			frame(mover.OpHas, absent, 0, 0, nil),
			frame(mover.OpBatch, "", 0, 0, nil),
			frame(mover.OpWrite, "", 0, 0, []byte("in a batch")),
		}, nil)), mover.StatusOK, nil, func(t *testing.T, r mover.Response) {
			rs, err := mover.DecodeBatchResponse(r.Data, 4)
			if err != nil {
				t.Fatal(err)
			}
			if rs[0].Status != mover.StatusOK || !bytes.Equal(rs[0].Data, small[:10]) ||
				rs[1].Status != mover.StatusNotFound || rs[2].Status != mover.StatusError ||
				rs[3].Status != mover.StatusOK || string(rs[3].Data) != hexID([]byte("in a batch")) {
				t.Fatalf("batch responses %v %v %v %v", rs[0].Status, rs[1].Status, rs[2].Status, rs[3].Status)
			}
		}},
		{"empty batch", frame(mover.OpBatch, "", 0, 0, nil), mover.StatusOK, []byte{}, nil},
		{"truncated batch", frame(mover.OpBatch, "", 0, 0, frame(mover.OpRead, sid, 0, 0, nil)[:20]), mover.StatusError, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := roundTrip(t, c, tc.req)
			if !ok {
				t.Fatal("connection closed")
			}
			if r.Status != tc.status {
				t.Fatalf("status %v (%q), want %v", r.Status, truncate(r.Data), tc.status)
			}
			if tc.data != nil && !bytes.Equal(r.Data, tc.data) {
				t.Fatalf("data %q, want %q", truncate(r.Data), truncate(tc.data))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	for _, id := range []string{sid, lid} {
		cid, _ := cas.ParseID(id)
		if ok, _ := peerStore.Has(cid); !ok {
			t.Errorf("%s not sent to the peer", id)
		}
	}
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

func TestMalformed(t *testing.T) {
	e := peertest.Daemon(t, daemon.Config{MaxBatch: 1 << 20})
	sid := hexID([]byte("x"))
	idLen := func(n uint16) []byte {
		b := []byte{byte(mover.OpRead)}
		b = binary.LittleEndian.AppendUint16(b, n)
		return b
	}
	tests := []struct {
		name string
		raw  []byte
		keep bool // connection stays usable after an ERROR
	}{
		{"unknown op", frame(0xee, "", 0, 0, nil), true},
		{"unknown op with small data", frame(0xee, "", 0, 0, make([]byte, 1000)), true},
		{"unknown op with large data", frame(0xee, "", 0, 0, make([]byte, 100<<10)), false},
		{"read with large data", frame(mover.OpRead, sid, 0, 0, make([]byte, 100<<10)), false},
		{"id too long", append(idLen(mover.MaxIDLen+1), make([]byte, 100)...), false},
		{"id of 63 digits", frame(mover.OpRead, sid[:63], 0, 0, nil), true},
		{"id of 1024 bytes", frame(mover.OpHas, strings.Repeat("a", 1024), 0, 0, nil), true},
		{"send with a long remote", frame(mover.OpSend, sid, 0, 0, make([]byte, mover.MaxRemoteLen+1)), true},
		{"batch over the limit", frame(mover.OpBatch, "", 0, 0, make([]byte, 1<<20+1)), false},
		{"batch of garbage", frame(mover.OpBatch, "", 0, 0, []byte{1, 0xff, 0xff, 3}), true},
		{"batch with a huge inner request", frame(mover.OpBatch, "", 0, 0, append(frame(mover.OpWrite, "", 0, 0, nil)[:19], 0xff, 0xff, 0xff, 0xff)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.Conn(t)
			r, ok := roundTrip(t, c, tc.raw)
			if !ok {
				t.Fatal("closed without an answer")
			}
			if r.Status != mover.StatusError {
				t.Fatalf("status %v (%q), want ERROR", r.Status, r.Data)
			}
			if tc.keep {
				if r, ok := roundTrip(t, c, frame(mover.OpStat, "", 0, 0, nil)); !ok || r.Status != mover.StatusOK {
					t.Fatalf("connection unusable after the error: %v %v", ok, r.Status)
				}
			} else if !closed(c) {
				t.Fatal("connection left open after an unrecoverable frame")
			}
		})
	}
	t.Run("cut short", func(t *testing.T) {
		for _, raw := range [][]byte{
			{byte(mover.OpRead)},
			frame(mover.OpRead, sid, 0, 0, nil)[:30],
			frame(mover.OpWrite, "", 0, 0, make([]byte, 5000))[:3000],
			// A WRITE announcing 4 GiB that stops after 3 MiB: streamed,
			// so bounded memory, then dropped.
			append(frame(mover.OpWrite, "", 0, 0, nil)[:19], append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 3<<20)...)...),
		} {
			c, err := net.Dial("unix", e.Path)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(raw)
			c.(*net.UnixConn).CloseWrite()
			if !closed(c) {
				t.Errorf("a frame cut short (%d bytes) got an answer", len(raw))
			}
			c.Close()
		}
	})
	t.Run("garbage", func(t *testing.T) {
		c := e.Conn(t)
		g := make([]byte, 1<<16)
		for i := range g {
			g[i] = byte(i*7919 + i>>3)
		}
		c.Write(g)
		c.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	// The daemon still serves.
	if r, ok := roundTrip(t, e.Conn(t), frame(mover.OpStat, "", 0, 0, nil)); !ok || r.Status != mover.StatusOK {
		t.Fatal("daemon no longer serves")
	}
	if st, _ := e.Store.Stat(); st.Objects != 0 {
		t.Errorf("malformed requests stored %d objects", st.Objects)
	}
}

// TestDrain checks that a request received before the daemon is told to
// stop is completed and answered, and that idle connections are closed.
func TestDrain(t *testing.T) {
	e := peertest.Daemon(t, daemon.Config{})
	idle := e.Conn(t)
	if r, ok := roundTrip(t, idle, frame(mover.OpStat, "", 0, 0, nil)); !ok || r.Status != mover.StatusOK {
		t.Fatal("stat failed")
	}
	busy := e.Conn(t)
	payload := data(6<<20, 5)
	raw := frame(mover.OpWrite, "", 0, 0, payload)
	half := len(raw) / 2
	if _, err := busy.Write(raw[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the daemon is now streaming it
	e.Stop()
	if !closed(idle) {
		t.Error("idle connection not closed by the drain")
	}
	select {
	case <-e.Done:
		t.Fatal("daemon stopped before its request was done")
	default:
	}
	r, ok := roundTrip(t, busy, raw[half:])
	if !ok || r.Status != mover.StatusOK || string(r.Data) != hexID(payload) {
		t.Fatalf("request in flight during the drain: ok %v status %v %q", ok, r.Status, truncate(r.Data))
	}
	select {
	case <-e.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop after its last request")
	}
	if _, err := net.Dial("unix", e.Path); err == nil {
		t.Error("socket still accepts after the drain")
	}
}

// TestStoreChangedElsewhere checks that the daemon's remembered locations
// follow changes made to the store by another process: a removed object is
// no longer served, and one stored again is served from its new place.
func TestStoreChangedElsewhere(t *testing.T) {
	e := peertest.Daemon(t, daemon.Config{})
	other, err := cas.OpenOptions(e.Store.Dir(), cas.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c := e.Conn(t)
	obj := data(5000, 3)
	id := hexID(obj)
	cid, _ := cas.ParseID(id)
	for round := range 3 {
		if r, ok := roundTrip(t, c, frame(mover.OpWrite, "", 0, 0, obj)); !ok || r.Status != mover.StatusOK {
			t.Fatalf("round %d: write: %v", round, r.Status)
		}
		for range 2 { // the second read is served from the remembered location
			if r, _ := roundTrip(t, c, frame(mover.OpRead, id, 0, 0, nil)); r.Status != mover.StatusOK || !bytes.Equal(r.Data, obj) {
				t.Fatalf("round %d: read: %v", round, r.Status)
			}
		}
		if err := other.Remove(context.Background(), cid); err != nil {
			t.Fatal(err)
		}
		for _, op := range []mover.Op{mover.OpRead, mover.OpHas, mover.OpReadMapped} {
			if r, _ := roundTrip(t, c, frame(op, id, 0, 0, nil)); r.Status != mover.StatusNotFound {
				t.Fatalf("round %d: %v after removal elsewhere: %v", round, op, r.Status)
			}
		}
	}
}
