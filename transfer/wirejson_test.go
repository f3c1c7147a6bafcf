package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
		req := Req{ID: 1, Op: opMeta, Path: n,
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
		{many("files", "{}", maxReqItems), false, true},
		{many("files", "{}", maxReqItems+1), false, false},
		{many("meta", `{"op":"mkdir","path":"[,]"}`, maxReqItems+1), false, false},
		{many("commits", "{}", maxReqItems+1), false, false},
		{many("adopt", "{}", maxAdoptItems+1), false, false},
		{many("errs", `""`, maxReqItems+1), true, false},
		{many("missing", "1", maxAdoptItems+1), true, false},
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
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errTooManyItems)) {
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

// capture is a stream that keeps the headers sent on it.
type capture struct {
	fakeStream
	hdrs [][]byte
}

func (c *capture) Send(hdr, payload []byte) error {
	c.hdrs = append(c.hdrs, append([]byte(nil), hdr...))
	return c.fakeStream.Send(hdr, payload)
}

// TestBatchVerdictPieces: thousands of long per-file errors travel in
// pieces that each fit a header, and come back complete and in place.
func TestBatchVerdictPieces(t *testing.T) {
	s := newSession(pipeConn(t), newFrameReader(strings.NewReader(""), DefaultMaxFrame), slog.New(slog.DiscardHandler), 0)
	defer s.Close()
	out := &capture{}
	sender := newLane(s, 0, out)
	errs := make([]string, 3000)
	for i := range errs {
		if i%3 != 0 {
			errs[i] = fmt.Sprintf("create dir/%s-%d: no space left on device", strings.Repeat("n", i%300), i)
		}
	}
	errs[7] = "write x: " + strings.Repeat("y", 5000) // cut, not fatal
	if err := sender.sendBatchVerdicts(9, errs); err != nil {
		t.Fatal(err)
	}
	if len(out.hdrs) < 2 {
		t.Fatalf("%d pieces", len(out.hdrs))
	}
	var got []string
	recv := newLane(s, 1, &fakeStream{})
	recv.batches[9] = &pendingBatch{count: len(errs), cb: func(e []string, err error) { got = e }}
	for _, h := range out.hdrs {
		if len(h) > 4096 {
			t.Fatalf("a %d-byte piece", len(h))
		}
		if err := recv.handle(h, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(errs) {
		t.Fatalf("%d verdicts for %d files", len(got), len(errs))
	}
	for i := range errs {
		want := errs[i]
		if i == 7 {
			want = verdictMsg(want)
		}
		if got[i] != want {
			t.Fatalf("verdict %d: %q, want %q", i, got[i], want)
		}
	}
}

// pipeConn is one end of an in-memory connection, closed with the test.
func pipeConn(t *testing.T) net.Conn {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1
}
