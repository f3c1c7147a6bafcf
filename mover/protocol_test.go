package mover

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const testID = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

func TestRequestRoundTrip(t *testing.T) {
	batch, _ := AppendRequest(nil, &Request{Op: OpRead, ID: testID})
	batch, _ = AppendRequest(batch, &Request{Op: OpWrite, Data: []byte("x")})
	tests := []Request{
		{Op: OpRead, ID: testID},
		{Op: OpRead, ID: testID, Offset: 1 << 40, Len: 4096},
		{Op: OpReadMapped, ID: testID},
		{Op: OpWrite, Data: []byte("hello")},
		{Op: OpWrite, ID: testID, Data: bytes.Repeat([]byte{7}, 70000)},
		{Op: OpSend, ID: testID, Data: []byte("xfer://10.0.0.2:7878")},
		{Op: OpFetch, ID: testID, Data: []byte("nodeA")},
		{Op: OpBatch, Data: batch},
		{Op: OpHas, ID: testID},
		{Op: OpStat},
		{Op: OpStat, ID: testID},
		{Op: 0xff, ID: "odd", Offset: ^uint64(0), Len: ^uint64(0)},
	}
	for _, want := range tests {
		b, err := AppendRequest([]byte("prefix"), &want)
		if err != nil {
			t.Fatal(err)
		}
		b = b[len("prefix"):]
		if len(b) != RequestHeaderSize+len(want.ID)+len(want.Data) {
			t.Fatalf("%s: encoded %d bytes", want.Op, len(b))
		}
		if b[0] != byte(want.Op) || int(binary.LittleEndian.Uint16(b[1:])) != len(want.ID) ||
			string(b[3:3+len(want.ID)]) != want.ID {
			t.Fatalf("%s: bad layout % x", want.Op, b[:min(len(b), 40)])
		}
		got, n, err := DecodeRequest(append(b, "trailing"...))
		if err != nil || n != len(b) {
			t.Fatalf("%s: decode: %v, %d of %d bytes", want.Op, err, n, len(b))
		}
		if want.Data == nil {
			want.Data = []byte{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v, want %+v", want.Op, got, want)
		}
		// Every proper prefix is short, never an error of another kind.
		for i := 0; i < len(b); i += 1 + i/64 {
			if _, _, err := DecodeRequest(b[:i]); !errors.Is(err, ErrShort) {
				t.Fatalf("%s: %d of %d bytes: %v, want ErrShort", want.Op, i, len(b), err)
			}
		}
	}
	reqs, err := DecodeBatch(batch, 10)
	if err != nil || len(reqs) != 2 || reqs[1].Op != OpWrite || string(reqs[1].Data) != "x" {
		t.Fatalf("batch: %+v %v", reqs, err)
	}
}

func TestMalformedRequests(t *testing.T) {
	long := []byte{byte(OpRead)}
	long = binary.LittleEndian.AppendUint16(long, MaxIDLen+1)
	if _, _, err := DecodeRequest(append(long, make([]byte, 2000)...)); !errors.Is(err, ErrFrame) {
		t.Errorf("id_len above the limit: %v", err)
	}
	if _, err := AppendHeader(nil, OpRead, strings.Repeat("a", MaxIDLen+1), 0, 0, 0); err == nil {
		t.Error("encoded an id above the limit")
	}
	one, _ := AppendRequest(nil, &Request{Op: OpHas, ID: testID})
	for _, tc := range []struct {
		name string
		data []byte
		max  int
	}{
		{"truncated", one[:len(one)-1], 10},
		{"too many", bytes.Repeat(one, 3), 2},
		{"trailing byte", append(append([]byte{}, one...), 9), 10},
	} {
		if _, err := DecodeBatch(tc.data, tc.max); !errors.Is(err, ErrFrame) {
			t.Errorf("batch %s: %v, want ErrFrame", tc.name, err)
		}
	}
	if _, err := DecodeBatchResponse([]byte{0, 1, 0, 0, 0}, 1); !errors.Is(err, ErrFrame) {
		t.Errorf("truncated batch response: %v", err)
	}
	if _, err := DecodeLocation([]byte{1, 2, 3}); !errors.Is(err, ErrFrame) {
		t.Errorf("short location: %v", err)
	}
	if _, err := DecodeStats(make([]byte, StatsSize-1)); !errors.Is(err, ErrFrame) {
		t.Errorf("short stats: %v", err)
	}
	for _, id := range []string{testID[:63], strings.ToUpper(testID), testID[:63] + "g", ""} {
		if ValidID([]byte(id)) {
			t.Errorf("ValidID(%q)", id)
		}
	}
	if !ValidID([]byte(testID)) {
		t.Error("ValidID rejects a valid id")
	}
}

func TestResponseRoundTrip(t *testing.T) {
	loc := Location{Kind: LocPacked, Offset: 64, Size: 4096, Dev: 2049, Ino: 77, Path: "/srv/xfer/cas/packs/pack-000001.dat"}
	st := Stats{1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, want := range []Response{
		{Status: StatusOK, Data: []byte("data")},
		{Status: StatusNotFound, Data: []byte{}},
		{Status: StatusError, Data: []byte("bad id")},
		{Status: StatusCorrupt, Data: []byte("hashes to …")},
		{Status: StatusPeer, Data: []byte("connection refused")},
		{Status: StatusLocated, Data: AppendLocation(nil, &loc)},
		{Status: StatusOK, Data: AppendStats(nil, &st)},
	} {
		b, err := AppendResponse(nil, &want)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := DecodeResponse(b)
		if err != nil || n != len(b) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: got %+v (%d bytes, %v)", want.Status, got, n, err)
		}
		if _, _, err := DecodeResponse(b[:len(b)-1]); !errors.Is(err, ErrShort) {
			t.Fatalf("%v: truncated: %v", want.Status, err)
		}
	}
	if l, err := DecodeLocation(AppendLocation(nil, &loc)); err != nil || l != loc {
		t.Fatalf("location: %+v %v", l, err)
	}
	if s, err := DecodeStats(AppendStats(nil, &st)); err != nil || s != st {
		t.Fatalf("stats: %+v %v", s, err)
	}
	var all []byte
	for i := range 3 {
		all, _ = AppendResponse(all, &Response{Status: Status(i), Data: bytes.Repeat([]byte{byte(i)}, i)})
	}
	rs, err := DecodeBatchResponse(all, 3)
	if err != nil || len(rs) != 3 || rs[2].Status != 2 || len(rs[2].Data) != 2 {
		t.Fatalf("batch response: %+v %v", rs, err)
	}
}

// FuzzDecodeRequest feeds the frame decoder arbitrary bytes: it must never
// panic or allocate beyond what the bytes hold, a decoded request must
// encode back to the bytes it came from, and the batch decoder must agree.
// Seeds: testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	for _, r := range []Request{
		{Op: OpRead, ID: testID, Len: 4096},
		{Op: OpWrite, Data: []byte("data")},
		{Op: OpBatch, Data: []byte{1, 0, 0}},
	} {
		b, _ := AppendRequest(nil, &r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeRequest(b)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrFrame) {
				t.Fatalf("unexpected error kind: %v", err)
			}
		} else {
			if n > len(b) || n < RequestHeaderSize {
				t.Fatalf("consumed %d of %d bytes", n, len(b))
			}
			enc, err := AppendRequest(nil, &r)
			if err != nil || !bytes.Equal(enc, b[:n]) {
				t.Fatalf("re-encoding differs: %v\n% x\n% x", err, enc, b[:n])
			}
			h, err := ParseHeader(b)
			if err != nil || h.Size()+int(h.DataLen) != n || h.Op != r.Op {
				t.Fatalf("header %+v disagrees with request (%v)", h, err)
			}
		}
		reqs, err := DecodeBatch(b, 64)
		if err == nil {
			total := 0
			for i := range reqs {
				total += RequestHeaderSize + len(reqs[i].ID) + len(reqs[i].Data)
			}
			if total != len(b) {
				t.Fatalf("batch of %d requests covers %d of %d bytes", len(reqs), total, len(b))
			}
		}
		if _, err := DecodeLocation(b); err == nil && len(b) < 35 {
			t.Fatal("location decoded from too few bytes")
		}
	})
}
