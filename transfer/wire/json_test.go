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
