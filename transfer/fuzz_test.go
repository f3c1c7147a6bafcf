package transfer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/transfer/wire"

	"github.com/xfer-io/xfer/backends"
	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
)

// FuzzFrame feeds arbitrary bytes to the control frame reader and to the
// decoders of every frame a peer can send: nothing may panic or allocate
// beyond the frame limit.
func FuzzFrame(f *testing.F) {
	f.Add(wire.AppendFrame(nil, wire.FramePing, nil))
	f.Add(wire.AppendFrame(nil, wire.FrameReq, []byte(`{"id":1,"op":"list","path":"a"}`)))
	e := wire.Enc{}
	e.Uvar(1)
	e.Uvar(1)
	e.Str("a/b")
	e.U8(1)
	e.Svar(3)
	e.Uvar(0o644)
	e.Svar(1)
	e.Str("")
	e.Blob(nil)
	e.Uvar(1)
	e.Uvar(1)
	f.Add(wire.AppendFrame(nil, wire.FrameEntries, e.Buf))
	f.Add([]byte{wire.FrameReq, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := wire.NewFrameReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 8; i++ {
			typ, p, err := fr.Read()
			if err != nil {
				return
			}
			if len(p) > 1<<16 {
				t.Fatalf("frame of %d bytes beyond the limit", len(p))
			}
			switch typ {
			case wire.FrameEntries:
				d := &wire.Dec{Buf: p}
				d.Uvar()
				n := d.Uvar()
				for j := uint64(0); j < n && j < wire.ListBatch; j++ {
					if _, err := wire.ReadEntry(d); err != nil {
						break
					}
				}
			case wire.FrameReq:
				var r wire.Req
				json.Unmarshal(p, &r)
			case wire.FrameHello:
				wire.DecodeHello(p)
			}
		}
	})
}

// FuzzHello: the first frame any stranger sends.
func FuzzHello(f *testing.F) {
	f.Add([]byte(`{"proto":"xfer","version":1,"role":"control","transports":["tcp"],"want":"auto","streams":4,"nonce":"ab"}`))
	f.Add([]byte(`{"proto":"xfer","version":1,"role":"data","session":"x","stream":3,"proof":"y"}`))
	f.Add([]byte(`{"proto":"xfer","streams":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := wire.DecodeHello(b)
		if err == nil && (h.Proto != "xfer" || h.Streams < 0 || h.Stream < 0) {
			t.Fatalf("accepted an invalid hello: %+v", h)
		}
	})
}

// FuzzDataMessage: chunk and batch messages on a data stream, decoded by
// a receiver with a real root.
func FuzzDataMessage(f *testing.F) {
	sf := wire.SmallFile{Path: "d/f", Mode: 0o644, MtimeNs: 1, Data: []byte("hi")}
	e := wire.Enc{}
	e.U8(0)
	wire.AppendSmall(&e, &sf)
	f.Add(e.Buf, 1)
	f.Add([]byte{1, 2, 3}, 3)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		root := openRoot(t)
		r := newReceiver(root, true, false, "")
		r.writeBatch(payload, count, true)
		d := &wire.Dec{Buf: payload}
		wire.ReadSmall(d)
	})
}

// allocated runs f and returns the bytes it allocated on the heap (the
// fuzz worker runs one input at a time, so little else allocates).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzCleanPath: the path checks every name from a peer goes through.
// A path they accept is canonical, relative and stays beneath the root,
// and so is what remains after the export name is taken off.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "/abs", "a/./b", "a/..", "\xff\xfe", "exp/\xff", "exp", "a\x00b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		ok := func(p string) {
			t.Helper()
			if strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
				t.Fatalf("accepted %q", p)
			}
			for _, c := range strings.Split(p, "/") {
				if p != "" && (c == "" || c == "." || c == "..") {
					t.Fatalf("accepted %q with component %q", p, c)
				}
			}
			if c, err := fsroot.Clean(p); err != nil || c != p {
				t.Fatalf("accepted %q, which cleans to %q (%v)", p, c, err)
			}
		}
		if wire.ValidRel(p) == nil {
			ok(p)
		}
		if rest, err := stripExport("exp", p); err == nil {
			ok(rest)
			if p != "exp" && !strings.HasPrefix(p, "exp/") {
				t.Fatalf("%q is outside export exp, yet gave %q", p, rest)
			}
		}
	})
}

// FuzzBatchDecode: a small-file batch as a read-only receiver decodes it
// (every file is refused, so nothing touches a disk). Whatever the count
// claims, what the decoder allocates stays proportional to the payload.
func FuzzBatchDecode(f *testing.F) {
	sf := wire.SmallFile{Path: "d/\xff", Mode: 0o644, MtimeNs: 1, Data: []byte("hi")}
	e := wire.Enc{}
	e.U8(1)
	wire.AppendSmall(&e, &sf)
	wire.AppendSmall(&e, &sf)
	f.Add(e.Buf, 2)
	f.Add(e.Buf, 1<<30)
	f.Add(make([]byte, 4096), 4095)
	f.Add([]byte{0}, 1)
	r := newReceiver(nil, true, true, "")
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		var errs []string
		var err error
		n := allocated(func() { errs, err = r.writeBatch(payload, count, true) })
		if bound := uint64(16<<10 + 12*len(payload)); n > bound {
			t.Fatalf("decoding %d bytes claiming %d files allocated %d bytes (bound %d)", len(payload), count, n, bound)
		}
		if err == nil && len(errs) != count {
			t.Fatalf("%d verdicts for %d files", len(errs), count)
		}
	})
}

// fakeStream plays one message's payload to a lane and swallows what the
// lane sends back.
type fakeStream struct {
	payload []byte
	sent    int
}

func (s *fakeStream) Send(hdr, payload []byte) error {
	if len(hdr) > backends.MaxHeader {
		return fmt.Errorf("%d-byte header", len(hdr))
	}
	s.sent++
	return nil
}
func (s *fakeStream) SendFile(hdr []byte, f *os.File, off int64, n int) error { return nil }
func (s *fakeStream) Recv([]byte) ([]byte, int, error)                        { return nil, 0, io.EOF }
func (s *fakeStream) RecvPayload(p []byte) error {
	if len(p) > len(s.payload) {
		return io.ErrUnexpectedEOF
	}
	copy(p, s.payload)
	s.payload = s.payload[len(p):]
	return nil
}
func (s *fakeStream) Close() error { return nil }

// FuzzDataStream: one data-stream message (header and the payload that
// came with it) handled by a lane of a session that accepts no files,
// with batches and chunks pending so that verdicts are matched. Nothing
// may panic, every answer must fit a header, and the memory allocated
// stays proportional to what arrived (receive buffers come from the
// session's budget and are reused).
func FuzzDataStream(f *testing.F) {
	e := wire.Enc{}
	e.U8(wire.MsgBatch)
	e.Uvar(1)
	e.Uvar(2)
	f.Add(e.Buf, []byte{0, 1, 'a', 0, 0, 0})
	e = wire.Enc{}
	e.U8(wire.MsgBatch)
	e.Uvar(1)
	e.Uvar(1 << 40)
	f.Add(e.Buf, make([]byte, 1000))
	f.Add(wire.ChunkHeader(1, 0, 0, hashtree.Digest{}), []byte("data"))
	e = wire.Enc{}
	e.U8(wire.MsgAck)
	e.Uvar(7)
	e.Uvar(0)
	e.U8(wire.AckFailed)
	e.Str("write x: no space left on device")
	f.Add(e.Buf, []byte(nil))
	e = wire.Enc{}
	e.U8(wire.MsgBatchAck)
	e.Uvar(2)
	e.Uvar(5)
	e.U8(1)
	e.Uvar(2)
	e.Uvar(1)
	e.Str("create a: no space left on device")
	e.Uvar(4)
	e.Str("create b: no space left on device")
	f.Add(e.Buf, []byte(nil))
	e = wire.Enc{}
	e.U8(wire.MsgBatchAck)
	e.Uvar(3)
	e.Uvar(1 << 30)
	e.U8(0)
	e.Uvar(1 << 30)
	f.Add(e.Buf, []byte(nil))
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	s := newSession(c1, wire.NewFrameReader(c1, wire.DefaultMaxFrame), slog.New(slog.DiscardHandler), time.Minute)
	defer s.Close()
	st := &fakeStream{}
	l := newLane(s, 0, st)
	// Warm the pool: receive buffers are reused, not allocated per message.
	for c := minBufClass; c <= wire.MaxBatchPayload; c *= 2 {
		b, err := s.mem.Get(c)
		if err != nil {
			f.Fatal(err)
		}
		s.mem.Put(b)
	}
	f.Fuzz(func(t *testing.T, hdr, payload []byte) {
		if len(hdr) > backends.MaxHeader || len(payload) > wire.MaxBatchPayload {
			return
		}
		l.mu.Lock()
		for id, count := range map[uint64]int{1: 1, 2: 5, 3: wire.MaxBatchFiles} {
			l.batches[id] = &pendingBatch{count: count, cb: func([]string, error) {}}
		}
		l.chunks[[2]uint64{7, 0}] = func(byte, string) {}
		l.mu.Unlock()
		st.payload = payload
		// The pool drops buffers idle for 30 s (a slow fuzzing machine
		// gets there): take this payload's buffer back into it first, so
		// that only what decoding allocates is counted.
		if len(payload) > 0 {
			if b, err := s.mem.Get(len(payload)); err == nil {
				s.mem.Put(b)
			}
		}
		var buf []byte
		n := allocated(func() {
			l.handle(hdr, len(payload), &buf)
			if buf != nil {
				s.mem.Put(buf)
			}
		})
		if bound := uint64(32<<10 + 8*(len(hdr)+len(payload))); n > bound {
			t.Fatalf("a %d-byte header and %d-byte payload allocated %d bytes (bound %d)", len(hdr), len(payload), n, bound)
		}
	})
}

// FuzzListing: an entries frame of a peer's listing. Whatever decodes
// re-encodes to the same entries, and decoding allocates in proportion
// to the frame.
func FuzzListing(f *testing.F) {
	e := wire.Enc{}
	e.Uvar(9)
	e.Uvar(2)
	for _, en := range []plan.Entry{
		{Path: "a/\xff\xfe", Type: plan.TypeFile, Size: 3, Mode: 0o644, MtimeNs: 1, Ino: 2, Nlink: 1},
		{Path: "l\xfe", Type: plan.TypeSymlink, Target: "t\xff", MtimeNs: -5},
	} {
		wire.AppendEntry(&e, &en)
	}
	f.Add(e.Buf)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		var id uint64
		var batch []plan.Entry
		var err error
		n := allocated(func() { id, batch, err = wire.DecodeEntries(p) })
		if bound := uint64(8<<10 + 16*len(p)); n > bound {
			t.Fatalf("decoding a %d-byte frame allocated %d bytes (bound %d)", len(p), n, bound)
		}
		if err != nil {
			return
		}
		again := wire.Enc{}
		again.Uvar(id)
		again.Uvar(uint64(len(batch)))
		for i := range batch {
			wire.AppendEntry(&again, &batch[i])
		}
		id2, batch2, err := wire.DecodeEntries(again.Buf)
		if err != nil || id2 != id || !reflect.DeepEqual(batch, batch2) {
			t.Fatalf("re-encoded listing differs: %v\n%+v\n%+v", err, batch, batch2)
		}
	})
}

// FuzzControlJSON: requests and responses as JSON. Names survive a round
// trip byte for byte, and arrays beyond their limits are refused.
func FuzzControlJSON(f *testing.F) {
	for _, r := range []wire.Req{
		{ID: 1, Op: wire.OpMeta, Meta: []wire.MetaOp{{Op: "symlink", Path: "l\xfe", Target: "t\xff"}, {Op: "delete", Path: "\xff\xff"}}},
		{ID: 2, Op: wire.OpOpen, Files: []wire.FileSpec{{FID: 1, Path: "big\xff.bin", Size: 9, ChunkSize: 1024}}},
		{ID: 3, Op: wire.OpJob, Job: &wire.JobSpec{SrcPath: "s\xff", DstPath: "d\xfe"}},
		{ID: 4, Op: wire.OpStat, Path: "caf\xe9"},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := json.Marshal(wire.Resp{ID: 5, Errs: []string{"", "create \xff: no space"}, Entry: &plan.Entry{Path: "\xfe", Target: "\xff"},
		Haves: [][][2]int64{{{0, 3}}}, Missing: []int64{1}})
	f.Add(b)
	f.Add([]byte(`{"id":1,"files":[` + strings.Repeat(`{},`, wire.MaxReqItems) + `{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.Req
		if json.Unmarshal(b, &r) == nil {
			if len(r.Meta) > wire.MaxReqItems || len(r.Files) > wire.MaxReqItems || len(r.Commits) > wire.MaxReqItems || len(r.Adopt) > wire.MaxAdoptItems {
				t.Fatalf("accepted a request beyond the limits")
			}
			again, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var r2 wire.Req
			if err := json.Unmarshal(again, &r2); err != nil || !reflect.DeepEqual(normReq(r), normReq(r2)) {
				t.Fatalf("request changed on a round trip (%v):\n%+v\n%+v", err, r, r2)
			}
		}
		var resp wire.Resp
		if json.Unmarshal(b, &resp) == nil {
			if len(resp.Errs) > wire.MaxReqItems || len(resp.Missing) > wire.MaxAdoptItems {
				t.Fatalf("accepted a response beyond the limits")
			}
			if resp.Entry != nil {
				again, err := json.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				var r2 wire.Resp
				if err := json.Unmarshal(again, &r2); err != nil || r2.Entry == nil ||
					r2.Entry.Path != resp.Entry.Path || r2.Entry.Target != resp.Entry.Target {
					t.Fatalf("entry changed on a round trip (%v)", err)
				}
			}
		}
	})
}

// normReq makes empty and nil slices alike for comparison.
func normReq(r wire.Req) wire.Req {
	if len(r.Meta) == 0 {
		r.Meta = nil
	}
	if len(r.Files) == 0 {
		r.Files = nil
	}
	if len(r.Commits) == 0 {
		r.Commits = nil
	}
	if len(r.Adopt) == 0 {
		r.Adopt = nil
	}
	return r
}
