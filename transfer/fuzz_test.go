package transfer

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzFrame feeds arbitrary bytes to the control frame reader and to the
// decoders of every frame a peer can send: nothing may panic or allocate
// beyond the frame limit.
func FuzzFrame(f *testing.F) {
	f.Add(appendFrame(nil, fPing, nil))
	f.Add(appendFrame(nil, fReq, []byte(`{"id":1,"op":"list","path":"a"}`)))
	e := enc{}
	e.uvar(1)
	e.uvar(1)
	e.str("a/b")
	e.u8(1)
	e.svar(3)
	e.uvar(0o644)
	e.svar(1)
	e.str("")
	e.bytes(nil)
	e.uvar(1)
	e.uvar(1)
	f.Add(appendFrame(nil, fEntries, e.b))
	f.Add([]byte{fReq, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b), 1<<16)
		for i := 0; i < 8; i++ {
			typ, p, err := fr.read()
			if err != nil {
				return
			}
			if len(p) > 1<<16 {
				t.Fatalf("frame of %d bytes beyond the limit", len(p))
			}
			switch typ {
			case fEntries:
				d := &dec{b: p}
				d.uvar()
				n := d.uvar()
				for j := uint64(0); j < n && j < listBatch; j++ {
					if _, err := readEntry(d); err != nil {
						break
					}
				}
			case fReq:
				var r Req
				json.Unmarshal(p, &r)
			case fHello:
				decodeHello(p)
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
		h, err := decodeHello(b)
		if err == nil && (h.Proto != "xfer" || h.Streams < 0 || h.Stream < 0) {
			t.Fatalf("accepted an invalid hello: %+v", h)
		}
	})
}

// FuzzDataMessage: chunk and batch messages on a data stream, decoded by
// a receiver with a real root.
func FuzzDataMessage(f *testing.F) {
	sf := smallFile{path: "d/f", mode: 0o644, mtimeNs: 1, data: []byte("hi")}
	e := enc{}
	e.u8(0)
	appendSmall(&e, &sf)
	f.Add(e.b, 1)
	f.Add([]byte{1, 2, 3}, 3)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		root := openRoot(t)
		r := newReceiver(root, true, false, "")
		r.writeBatch(payload, count, true)
		d := &dec{b: payload}
		readSmall(d)
	})
}
