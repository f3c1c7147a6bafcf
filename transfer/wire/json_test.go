package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/plan"
)

// TestNamesRoundTrip: every name field of the control messages keeps its
// bytes, whether or not they are UTF-8.
func TestNamesRoundTrip(t *testing.T) {
	names := []string{"plain", "\xff\xfe", "\xfe\xff", "d\xff/f\xfe", "\ufffd", "caf\xe9"}
	for _, n := range names {
		req := Req{ID: 1, Op: OpMeta, Path: n,
			Meta:  []MetaOp{{Op: "symlink", Path: n, Target: n + "/t\xff"}},
			Files: []FileSpec{{FID: 2, Path: n, Size: 1, ChunkSize: 1024}},
			Job:   &JobSpec{SrcPath: n, DstPath: "x/" + n}}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var got Req
		if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("%q: request %s came back as %+v (%v)", n, b, got, err)
		}
		resp := Resp{ID: 1, Entry: &plan.Entry{Path: n, Type: plan.TypeSymlink, Target: n}}
		b, err = json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var gotResp Resp
		if err := json.Unmarshal(b, &gotResp); err != nil || !reflect.DeepEqual(gotResp, resp) {
			t.Errorf("%q: response %s came back as %+v (%v)", n, b, gotResp, err)
		}
	}
}

// TestNameFieldsBytes: the exact JSON of each message with name fields,
// names valid UTF-8 or not: the name fields come after the others, each
// followed by its "_b64" sibling when it is not UTF-8. Peers of other
// builds read these bytes, so they must not move.
func TestNameFieldsBytes(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{Req{ID: 1, Op: OpMeta, Path: "a<b"}, `{"id":1,"op":"meta","path":"a\u003cb"}`},
		{Req{ID: 2, Op: OpOpen, Path: "d\xff/f"}, `{"id":2,"op":"open","path":"d\\xff/f","path_b64":"ZP8vZg=="}`},
		{Req{ID: 3, Op: OpOpen}, `{"id":3,"op":"open"}`},
		{MetaOp{Op: "symlink", Path: "l", Target: "t", Mode: 0o644}, `{"op":"symlink","mode":420,"path":"l","target":"t"}`},
		{MetaOp{Op: "mkdir", Path: "d\xfe"}, `{"op":"mkdir","path":"d\\xfe","path_b64":"ZP4="}`},
		{MetaOp{Op: "symlink", Path: "l\xff", Target: "t\xfe", ReplaceDir: true},
			`{"op":"symlink","replace_dir":true,"path":"l\\xff","path_b64":"bP8=","target":"t\\xfe","target_b64":"dP4="}`},
		{FileSpec{FID: 2, Path: "f", Size: 1, ChunkSize: 1024}, `{"fid":2,"size":1,"mode":0,"mtime":0,"chunk":1024,"path":"f"}`},
		{FileSpec{FID: 3, Path: "f\xff", Size: 1, Delta: true},
			`{"fid":3,"size":1,"mode":0,"mtime":0,"chunk":0,"delta":true,"path":"f\\xff","path_b64":"Zv8="}`},
		{JobSpec{SrcPath: "s", DstPath: "d", DstAddr: "x:1"}, `{"dst_addr":"x:1","options":{},"src":"s","dst":"d"}`},
		{JobSpec{SrcPath: "s\xff", DstPath: "d\xfe"}, `{"options":{},"src":"s\\xff","src_b64":"c/8=","dst":"d\\xfe","dst_b64":"ZP4="}`},
		{Resp{ID: 1, Entry: &plan.Entry{Path: "p", Type: plan.TypeFile, Size: 4}},
			`{"id":1,"entry":{"Type":1,"Size":4,"Mode":0,"MtimeNs":0,"Digest":null,"Ino":0,"Dev":0,"Nlink":0,"Blocks":0,"Uid":0,"Gid":0,"Special":0,"Rdev":0,"Err":"","Path":"p","Target":""}}`},
		{Resp{ID: 1, Entry: &plan.Entry{Path: "p\xff", Type: plan.TypeSymlink, Target: "t\xfe"}},
			`{"id":1,"entry":{"Type":3,"Size":0,"Mode":0,"MtimeNs":0,"Digest":null,"Ino":0,"Dev":0,"Nlink":0,"Blocks":0,"Uid":0,"Gid":0,"Special":0,"Rdev":0,"Err":"","Path":"p\\xff","Path_b64":"cP8=","Target":"t\\xfe","Target_b64":"dP4="}}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T %+v: JSON %s (%v), want %s", tc.v, tc.v, b, err, tc.want)
			continue
		}
		back := reflect.New(reflect.TypeOf(tc.v))
		if err := json.Unmarshal(b, back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), tc.v) {
			t.Errorf("%s came back as %+v (%v)", b, back.Elem().Interface(), err)
		}
	}
}

// TestBoundedArrays: arrays beyond their limits are refused before their
// elements are decoded.
func TestBoundedArrays(t *testing.T) {
	many := func(key, elem string, n int) string {
		return fmt.Sprintf(`{"id":1,%q:[%s]}`, key, strings.TrimSuffix(strings.Repeat(elem+",", n), ","))
	}
	for _, tc := range []struct {
		msg  string
		resp bool
		ok   bool
	}{
		{many("files", "{}", MaxReqItems), false, true},
		{many("files", "{}", MaxReqItems+1), false, false},
		{many("meta", `{"op":"mkdir","path":"[,]"}`, MaxReqItems+1), false, false},
		{many("commits", "{}", MaxReqItems+1), false, false},
		{many("adopt", "{}", MaxAdoptItems+1), false, false},
		{many("errs", `""`, MaxReqItems+1), true, false},
		{many("missing", "1", MaxAdoptItems+1), true, false},
		{many("haves", "[[0,1]]", maxHaveItems/4+1), true, false},
		{many("haves", "[[0,1]]", 100), true, true},
	} {
		var err error
		if tc.resp {
			var r Resp
			err = json.Unmarshal([]byte(tc.msg), &r)
		} else {
			var r Req
			err = json.Unmarshal([]byte(tc.msg), &r)
		}
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTooManyItems)) {
			t.Errorf("%.60s...: err = %v, want ok=%v", tc.msg, err, tc.ok)
		}
	}
}

func TestCountItems(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`[]`, 0},
		{`[1]`, 1},
		{`[1, 2 ,3]`, 3},
		{`[[],[1,2],{"a":[3],"b":1}]`, 6},
		{`["a,b", "[", "\"],"]`, 3},
		{`[ ]`, 0},
	} {
		if got := countItems([]byte(tc.in)); got != tc.want {
			t.Errorf("countItems(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
