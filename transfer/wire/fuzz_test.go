package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/internal/memtest"
	"github.com/xfer-io/xfer/plan"
)

// FuzzFrame feeds arbitrary bytes to the control frame reader and to the
// decoders of every frame a peer can send: nothing may panic or allocate
// beyond the frame limit.
func FuzzFrame(f *testing.F) {
	f.Add(AppendFrame(nil, FramePing, nil))
	f.Add(AppendFrame(nil, FrameReq, []byte(`{"id":1,"op":"list","path":"a"}`)))
	e := Enc{}
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
	f.Add(AppendFrame(nil, FrameEntries, e.Buf))
	f.Add([]byte{FrameReq, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewFrameReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 8; i++ {
			typ, p, err := fr.Read()
			if err != nil {
				return
			}
			if len(p) > 1<<16 {
				t.Fatalf("frame of %d bytes beyond the limit", len(p))
			}
			switch typ {
			case FrameEntries:
				d := &Dec{Buf: p}
				d.Uvar()
				n := d.Uvar()
				for j := uint64(0); j < n && j < ListBatch; j++ {
					if _, err := ReadEntry(d); err != nil {
						break
					}
				}
			case FrameReq:
				var r Req
				json.Unmarshal(p, &r)
			case FrameHello:
				DecodeHello(p)
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
		h, err := DecodeHello(b)
		if err == nil && (h.Proto != "xfer" || h.Streams < 0 || h.Stream < 0) {
			t.Fatalf("accepted an invalid hello: %+v", h)
		}
	})
}

// FuzzListing: an entries frame of a peer's listing. Whatever decodes
// re-encodes to the same entries, and decoding allocates in proportion
// to the frame.
func FuzzListing(f *testing.F) {
	e := Enc{}
	e.Uvar(9)
	e.Uvar(2)
	for _, en := range []plan.Entry{
		{Path: "a/\xff\xfe", Type: plan.TypeFile, Size: 3, Mode: 0o644, MtimeNs: 1, Ino: 2, Nlink: 1},
		{Path: "l\xfe", Type: plan.TypeSymlink, Target: "t\xff", MtimeNs: -5},
	} {
		AppendEntry(&e, &en)
	}
	f.Add(e.Buf)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		var id uint64
		var batch []plan.Entry
		var err error
		n := memtest.Allocated(func() { id, batch, err = DecodeEntries(p) })
		if bound := uint64(8<<10 + 16*len(p)); n > bound {
			t.Fatalf("decoding a %d-byte frame allocated %d bytes (bound %d)", len(p), n, bound)
		}
		if err != nil {
			return
		}
		again := Enc{}
		again.Uvar(id)
		again.Uvar(uint64(len(batch)))
		for i := range batch {
			AppendEntry(&again, &batch[i])
		}
		id2, batch2, err := DecodeEntries(again.Buf)
		if err != nil || id2 != id || !reflect.DeepEqual(batch, batch2) {
			t.Fatalf("re-encoded listing differs: %v\n%+v\n%+v", err, batch, batch2)
		}
	})
}

// FuzzControlJSON: requests and responses as JSON. Names survive a round
// trip byte for byte, and arrays beyond their limits are refused.
func FuzzControlJSON(f *testing.F) {
	for _, r := range []Req{
		{ID: 1, Op: OpMeta, Meta: []MetaOp{{Op: "symlink", Path: "l\xfe", Target: "t\xff"}, {Op: "delete", Path: "\xff\xff"}}},
		{ID: 2, Op: OpOpen, Files: []FileSpec{{FID: 1, Path: "big\xff.bin", Size: 9, ChunkSize: 1024}}},
		{ID: 3, Op: OpJob, Job: &JobSpec{SrcPath: "s\xff", DstPath: "d\xfe"}},
		{ID: 4, Op: OpStat, Path: "caf\xe9"},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := json.Marshal(Resp{ID: 5, Errs: []string{"", "create \xff: no space"}, Entry: &plan.Entry{Path: "\xfe", Target: "\xff"},
		Haves: [][][2]int64{{{0, 3}}}, Missing: []int64{1}})
	f.Add(b)
	f.Add([]byte(`{"id":1,"files":[` + strings.Repeat(`{},`, MaxReqItems) + `{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Req
		if json.Unmarshal(b, &r) == nil {
			if len(r.Meta) > MaxReqItems || len(r.Files) > MaxReqItems || len(r.Commits) > MaxReqItems || len(r.Adopt) > MaxAdoptItems {
				t.Fatalf("accepted a request beyond the limits")
			}
			again, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var r2 Req
			if err := json.Unmarshal(again, &r2); err != nil || !reflect.DeepEqual(normReq(r), normReq(r2)) {
				t.Fatalf("request changed on a round trip (%v):\n%+v\n%+v", err, r, r2)
			}
		}
		var resp Resp
		if json.Unmarshal(b, &resp) == nil {
			if len(resp.Errs) > MaxReqItems || len(resp.Missing) > MaxAdoptItems {
				t.Fatalf("accepted a response beyond the limits")
			}
			if resp.Entry != nil {
				again, err := json.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				var r2 Resp
				if err := json.Unmarshal(again, &r2); err != nil || r2.Entry == nil ||
					r2.Entry.Path != resp.Entry.Path || r2.Entry.Target != resp.Entry.Target {
					t.Fatalf("entry changed on a round trip (%v)", err)
				}
			}
		}
	})
}

// normReq makes empty and nil slices alike for comparison.
func normReq(r Req) Req {
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

// FuzzPatchHeader decodes arbitrary patch headers: nothing may panic, the
// leaf bitmap stays within its bound, and what decodes encodes back to a
// header that decodes the same.
func FuzzPatchHeader(f *testing.F) {
	f.Add(Patch{FID: 3, Index: 7, Off: 7 << 22, LeafSize: 16 << 10, Leaves: []int{0, 5, 255}}.Header()[1:])
	f.Add(Patch{FID: 1, LeafSize: 1 << 10}.Header()[1:])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePatch(&Dec{Buf: b})
		if err != nil {
			return
		}
		if n := len(p.Leaves); n > 0 && p.Leaves[n-1] >= maxPatchBitmap*8 {
			t.Fatalf("leaf %d beyond the bitmap's bound", p.Leaves[n-1])
		}
		q, err := DecodePatch(&Dec{Buf: p.Header()[1:]})
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v -> %+v (%v)", p, q, err)
		}
	})
}
