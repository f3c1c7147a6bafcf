package wire

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// taggedParts runs BatchTagged on p and returns the parts' offsets in p
// (a part is a subslice of p, so its offset is cap(p) - cap(part)) and
// their concatenation.
func taggedParts(t *testing.T, p []byte) (spans [][2]int, covered []byte) {
	t.Helper()
	BatchTagged(p, func(part []byte) {
		off := cap(p) - cap(part)
		if off < 0 || off+len(part) > len(p) || !bytes.Equal(p[off:off+len(part)], part) {
			t.Fatalf("part of %d bytes is not inside the payload", len(part))
		}
		spans = append(spans, [2]int{off, off + len(part)})
		covered = append(covered, part...)
	})
	for i := 1; i < len(spans); i++ {
		if spans[i][0] < spans[i-1][1] {
			t.Fatalf("parts out of order or overlapping: %v", spans)
		}
	}
	return spans, covered
}

// without returns p with the ranges cut out of it.
func without(p []byte, cut [][2]int) []byte {
	var out []byte
	at := 0
	for _, c := range cut {
		out = append(out, p[at:c[0]]...)
		at = c[1]
	}
	return append(out, p[at:]...)
}

// TestBatchTagged: the tag covers every byte of a batch but its files'
// data, for batches of every shape and every truncation of them: a file's
// data is left out only once the entry has parsed up to its end, and what
// does not parse is covered as it is.
func TestBatchTagged(t *testing.T) {
	owner := &Owner{Uid: 1000, Gid: 100, User: "alice", Group: "users"}
	cases := []struct {
		name  string
		files []SmallFile
	}{
		{"one", []SmallFile{{Path: "a", Mode: 0o644, MtimeNs: 1, Data: []byte("hello")}}},
		{"empty data", []SmallFile{{Path: "e", Mode: 0o600}, {Path: "f", Mode: 0o644, Data: []byte("x")}}},
		{"owners", []SmallFile{
			{Path: "d/o1", Mode: 0o640, MtimeNs: -5, Data: bytes.Repeat([]byte{7}, 3000), Owner: owner},
			{Path: "d/plain", Mode: 0o644, Data: []byte("plain")},
			{Path: "d/o2", Mode: 0o600, Sparse: true, Data: make([]byte, 5000), Owner: &Owner{Uid: 7, Numeric: true}},
		}},
		{"many", func() []SmallFile {
			var fs []SmallFile
			for i := range 40 {
				fs = append(fs, SmallFile{Path: fmt.Sprintf("m/%03d", i), Mode: 0o644, MtimeNs: int64(i), Data: bytes.Repeat([]byte{byte(i)}, i*37)})
			}
			return fs
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := Enc{}
			e.U8(0)
			var data [][2]int
			for i := range c.files {
				f := &c.files[i]
				f.Digest = hashtree.Sum(f.Data)
				at := AppendSmall(&e, f)
				data = append(data, [2]int{at.Data, at.Data + at.Len})
			}
			p := e.Buf
			for k := 0; k <= len(p); k++ {
				var cut [][2]int
				for _, d := range data {
					if d[1] <= k {
						cut = append(cut, d)
					}
				}
				_, covered := taggedParts(t, p[:k:k])
				if want := without(p[:k], cut); !bytes.Equal(covered, want) {
					t.Fatalf("prefix of %d of %d bytes: %d bytes covered, want %d", k, len(p), len(covered), len(want))
				}
			}
		})
	}
}

// FuzzBatchTagged: on any bytes, what BatchTagged leaves out of the tag is
// exactly the data that ReadSmall (the receiver's decoder) decodes, entry
// after entry, and everything else is covered.
func FuzzBatchTagged(f *testing.F) {
	e := Enc{}
	e.U8(0)
	AppendSmall(&e, &SmallFile{Path: "a", Mode: 0o644, Data: []byte("abc"), Owner: &Owner{Uid: 1, User: "u"}})
	AppendSmall(&e, &SmallFile{Path: "b", Data: []byte("de")})
	f.Add(e.Buf)
	f.Add(e.Buf[:len(e.Buf)-3])
	f.Add([]byte{0, 1, 'x', 0, 0, 4})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		p = p[:len(p):len(p)]
		var cut [][2]int
		if len(p) > 0 {
			d := Dec{Buf: p[1:]}
			for len(d.Buf) > 0 && d.Err == nil {
				sf := ReadSmall(&d)
				// Data decoded (even if an owner after it did not): it
				// is a piece of p, found by its address.
				if len(sf.Data) > 0 {
					off := int(uintptr(unsafe.Pointer(unsafe.SliceData(sf.Data))) - uintptr(unsafe.Pointer(unsafe.SliceData(p))))
					cut = append(cut, [2]int{off, off + len(sf.Data)})
				}
			}
		}
		_, covered := taggedParts(t, p)
		if want := without(p, cut); !bytes.Equal(covered, want) {
			t.Fatalf("%d bytes covered, want the %d that are not data the decoder decoded (%v)", len(covered), len(want), cut)
		}
	})
}

// TestAppendSmallFill: a file read in place is encoded as AppendSmall
// encodes it, and one whose read fails leaves the batch as it was, so the
// files around it decode whole.
func TestAppendSmallFill(t *testing.T) {
	files := []SmallFile{
		{Path: "a", Mode: 0o644, MtimeNs: 5, Data: []byte("first")},
		{Path: "b", Mode: 0o600, Data: []byte("unreadable"), Owner: &Owner{Uid: 3, User: "u"}},
		{Path: "c", Mode: 0o640, Sparse: true, Data: []byte("third"), Owner: &Owner{Gid: 4, Group: "g", Numeric: true}},
	}
	var direct, filled Enc
	for i := range files {
		f := files[i]
		f.Digest = hashtree.Sum(f.Data)
		data := f.Data
		f.Data = nil
		fill := func(dst []byte) error {
			if f.Path == "b" {
				copy(dst, "garbage") // written, then dropped
				return fmt.Errorf("read %s: permission denied", f.Path)
			}
			copy(dst, data)
			return nil
		}
		at, err := AppendSmallFill(&filled, &f, len(data), fill)
		if f.Path == "b" {
			if err == nil || at != (SmallAt{}) {
				t.Fatalf("failed fill: %+v, %v", at, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(filled.Buf[at.Data:at.Data+at.Len], data) {
			t.Fatalf("%s: %+v, %v", f.Path, at, err)
		}
		f.Data = data
		AppendSmall(&direct, &f)
	}
	if !bytes.Equal(direct.Buf, filled.Buf) {
		t.Fatalf("filled batch differs from the encoded one:\n%x\n%x", filled.Buf, direct.Buf)
	}
	d := Dec{Buf: filled.Buf}
	for _, want := range []string{"a", "c"} {
		if f := ReadSmall(&d); d.Err != nil || f.Path != want {
			t.Fatalf("decoded %q, %v; want %q", f.Path, d.Err, want)
		}
	}
	if len(d.Buf) != 0 {
		t.Fatalf("%d bytes left", len(d.Buf))
	}
}
