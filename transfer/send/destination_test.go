package send

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp" // the transport of the remote destination

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/wire"
)

// The destination conformance suite: every Destination (the receiver in
// process and a peer over a session) is held to the same behaviour of its
// per-file writer: commit, a refused digest, abort, resume after an
// interruption, park and the final pass of a split file, verification of
// chunks, a changed chunk patched leaf by leaf, a read-only tree. It is to Destination what
// backends/backendtest is to the transports.

// opened is a destination on dir, and interrupt, which ends it the way a
// killed run or a dropped connection does (the receiver keeps its partial
// files for the next run).
type opened struct {
	d         Destination
	interrupt func()
}

type destKind struct {
	name string
	open func(t *testing.T, dir string, o receive.Options) opened
}

var destKinds = []destKind{
	{"local", func(t *testing.T, dir string, o receive.Options) opened {
		root := fsroottest.Open(t, dir)
		h := receive.NewHandler(root, o)
		done := false
		stop := func() {
			if !done {
				done = true
				h.Abort()
				h.Close()
			}
		}
		t.Cleanup(stop)
		return opened{d: NewLocal(h, dir, 1, 0), interrupt: stop}
	}},
	{"remote", func(t *testing.T, dir string, o receive.Options) opened {
		root := fsroottest.Open(t, dir)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		closed := make(chan struct{}, 4)
		srv := session.NewServer(session.ServerConfig{Services: func(s *session.Session, _ session.Grant) error {
			h := receive.NewHandler(root, o)
			h.Register(s)
			s.OnClose(func() { closed <- struct{}{} })
			return nil
		}})
		served := make(chan struct{})
		go func() { srv.Serve(ctx, ln); close(served) }()
		s, err := session.Dial(ctx, ln.Addr().String(), session.DialOptions{Proto: "tcp", Streams: 1, ConnectTimeout: 5 * time.Second})
		if err != nil {
			cancel()
			<-served
			t.Fatal(err)
		}
		done := false
		stop := func() {
			if done {
				return
			}
			done = true
			s.Close()
			select { // the server's side of the session has let go of its files
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Error("the server did not end the session within 10s")
			}
			cancel()
			<-served
		}
		t.Cleanup(stop)
		return opened{d: NewRemote(s, 0), interrupt: stop}
	}},
}

const suiteChunk = 64 << 10

// source is the content of the file the suite transfers: four chunks,
// the last one short.
func source() []byte {
	b := make([]byte, 3*suiteChunk+12345)
	for i := range b {
		b[i] = byte(i ^ i>>9 ^ i>>17)
	}
	return b
}

func spec(fid uint64, data []byte) wire.FileSpec {
	return wire.FileSpec{FID: fid, Path: "f", Size: int64(len(data)), Mode: 0o640,
		MtimeNs: 1_600_000_000_123_456_789, ChunkSize: suiteChunk}
}

func chunkDigests(data []byte) []hashtree.Digest {
	var out []hashtree.Digest
	for _, c := range plan.Chunks(int64(len(data)), suiteChunk) {
		out = append(out, hashtree.ChunkDigest(data[c.Off:c.Off+c.Len], c.Off, int64(len(data)), suiteChunk))
	}
	return out
}

func wholeDigest(t *testing.T, data []byte) string {
	t.Helper()
	d, err := hashtree.Combine(chunkDigests(data), int64(len(data)), suiteChunk)
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// write sends the chunks idx of data through w (digest bad for those in
// corrupt) and returns the verdicts.
func write(t *testing.T, d Destination, w FileWriter, data []byte, idx []int, corrupt map[int]bool) []byte {
	t.Helper()
	l := d.Lanes()[0]
	chunks := plan.Chunks(int64(len(data)), suiteChunk)
	dgs := chunkDigests(data)
	var got []byte
	for _, i := range idx {
		c := chunks[i]
		dg := dgs[i]
		if corrupt[i] {
			dg[0] ^= 1
		}
		got = append(got, verdictOf(t, l, i, func(cb func(byte, string)) error {
			return w.WriteChunk(l, Chunk{Index: uint64(i), Off: c.Off, Len: int(c.Len), Verify: true, Digest: dg,
				Data: data[c.Off : c.Off+c.Len]}, cb)
		}))
	}
	return got
}

// verdictOf acquires l, sends chunk i with send and returns the verdict.
func verdictOf(t *testing.T, l Lane, i int, send func(cb func(byte, string)) error) byte {
	t.Helper()
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	verdict := make(chan byte, 1)
	if err := send(func(st byte, msg string) { l.Release(); verdict <- st }); err != nil {
		t.Fatalf("chunk %d: %v", i, err)
	}
	select {
	case st := <-verdict:
		return st
	case <-time.After(10 * time.Second):
		t.Fatalf("no verdict for chunk %d within 10s", i)
	}
	return 0
}

// names lists dir, hidden partial files and journals included.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func wantOnly(t *testing.T, dir string, want ...string) {
	t.Helper()
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("destination holds %q, want %q", got, want)
	}
}

// commitWhole commits w, the writer of f, with data's digest, and checks
// that f then holds data; when names the step in the messages.
func commitWhole(t *testing.T, w FileWriter, dir string, data []byte, when string) {
	t.Helper()
	if err := w.Commit(context.Background(), wholeDigest(t, data)); err != nil {
		t.Fatalf("commit %s: %v", when, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs %s (%v)", when, err)
	}
}

func open(t *testing.T, d Destination, sp wire.FileSpec) FileWriter {
	t.Helper()
	w, err := d.Open(context.Background(), sp)
	if err != nil {
		t.Fatalf("open %s: %v", sp.Path, err)
	}
	return w
}

var all = []int{0, 1, 2, 3}

func TestDestinationConformance(t *testing.T) {
	ctx := context.Background()
	data := source()
	tests := []struct {
		name string
		run  func(t *testing.T, k destKind, dir string)
	}{
		{"commit puts the file in place with its attributes", func(t *testing.T, k destKind, dir string) {
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			w := open(t, d, spec(1, data))
			if have, done := w.Resume(); len(have) != 0 || len(done) != 0 {
				t.Errorf("a fresh file resumes %v, %v", have, done)
			}
			if v := write(t, d, w, data, all, nil); !bytes.Equal(v, []byte{wire.AckOK, wire.AckOK, wire.AckOK, wire.AckOK}) {
				t.Fatalf("verdicts %v", v)
			}
			commitWhole(t, w, dir, data, "of a fresh file")
			st, _ := os.Stat(filepath.Join(dir, "f"))
			if st.Mode().Perm() != 0o640 || st.ModTime().UnixNano() != 1_600_000_000_123_456_789 {
				t.Errorf("mode %v mtime %d", st.Mode(), st.ModTime().UnixNano())
			}
			wantOnly(t, dir, "f")
		}},
		{"a wrong whole-file digest fails the file and keeps the old one", func(t *testing.T, k destKind, dir string) {
			os.WriteFile(filepath.Join(dir, "f"), []byte("old"), 0o644)
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			w := open(t, d, spec(1, data))
			write(t, d, w, data, all, nil)
			wrong := hashtree.Sum([]byte("something else")).String()
			var fe *FileError
			if err := w.Commit(ctx, wrong); !errors.As(err, &fe) {
				t.Fatalf("commit with a wrong digest: %v, want a FileError", err)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "f")); string(got) != "old" {
				t.Errorf("the old file became %d bytes", len(got))
			}
			wantOnly(t, dir, "f")
		}},
		{"abort leaves nothing behind", func(t *testing.T, k destKind, dir string) {
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			w := open(t, d, spec(1, data))
			write(t, d, w, data, []int{0, 2}, nil)
			if err := w.Abort(ctx); err != nil {
				t.Fatalf("abort: %v", err)
			}
			wantOnly(t, dir)
		}},
		{"a chunk that fails verification is refused", func(t *testing.T, k destKind, dir string) {
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			if !d.Verifies() && !d.InProcess() {
				t.Skip("this session does not verify chunks")
			}
			w := open(t, d, spec(1, data))
			if v := write(t, d, w, data, []int{0, 1}, map[int]bool{1: true}); !bytes.Equal(v, []byte{wire.AckOK, wire.AckMismatch}) {
				t.Fatalf("verdicts %v, want ok then mismatch", v)
			}
			write(t, d, w, data, []int{1, 2, 3}, nil) // sent again, intact
			commitWhole(t, w, dir, data, "after the resend")
		}},
		{"an interrupted file resumes: matching chunks are adopted, others sent", func(t *testing.T, k destKind, dir string) {
			first := k.open(t, dir, receive.Options{NoFsync: true})
			w := open(t, first.d, spec(1, data))
			write(t, first.d, w, data, []int{0, 1}, nil)
			first.interrupt()
			if len(names(t, dir)) == 0 {
				t.Fatal("the interruption left no partial file")
			}
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			w = open(t, d, spec(2, data))
			have, _ := w.Resume()
			held := map[int64]bool{}
			for _, r := range have {
				for i := r[0]; i <= r[1]; i++ {
					held[i] = true
				}
			}
			if !held[0] || !held[1] || held[2] || held[3] {
				t.Fatalf("resume offers %v, want chunks 0 and 1", have)
			}
			dgs := chunkDigests(data)
			bad := hashtree.Sum([]byte("not chunk 1"))
			missing, _, err := w.Adopt(ctx, []wire.AdoptChunk{{Index: 0, Digest: dgs[0].String()}, {Index: 1, Digest: bad.String()}}, 0)
			if err != nil || len(missing) != 1 || missing[0] != 1 {
				t.Fatalf("adopt: missing %v (%v), want [1]", missing, err)
			}
			write(t, d, w, data, []int{1, 2, 3}, nil)
			commitWhole(t, w, dir, data, "after resume")
			wantOnly(t, dir, "f")
		}},
		{"a changed chunk is patched leaf by leaf; a corrupt leaf is caught", func(t *testing.T, k destKind, dir string) {
			old := slices.Clone(data)
			old[suiteChunk+4000] ^= 0xff // chunk 1, its first leaf
			os.WriteFile(filepath.Join(dir, "f"), old, 0o644)
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			sp := spec(1, data)
			sp.Delta = true
			w := open(t, d, sp)
			if have, _ := w.Resume(); len(have) != 1 || have[0] != [2]int64{0, 3} {
				t.Fatalf("a seeded file resumes %v, want chunks 0-3", have)
			}
			dgs := chunkDigests(data)
			var offer []wire.AdoptChunk
			for i, dg := range dgs {
				offer = append(offer, wire.AdoptChunk{Index: int64(i), Digest: dg.String()})
			}
			leaf := hashtree.LeafSizeFor(suiteChunk)
			missing, leaves, err := w.Adopt(ctx, offer, leaf)
			if err != nil || !slices.Equal(missing, []int64{1}) || len(leaves) != 1 || leaves[0].Index != 1 {
				t.Fatalf("adopt: missing %v, leaves %v (%v), want chunk 1 with its leaves", missing, leaves, err)
			}
			c := plan.Chunks(int64(len(data)), suiteChunk)[1]
			mine := hashtree.LeafDigests(data[c.Off:c.Off+c.Len], c.Off, leaf)
			diff := hashtree.DiffLeaves(mine, leafDigests(leaves[0].Digests))
			if !slices.Equal(diff, []int{0}) {
				t.Fatalf("leaves that differ %v, want [0]", diff)
			}
			l := d.Lanes()[0]
			p := wire.Patch{Index: 1, Off: c.Off, Digest: dgs[1], LeafSize: leaf, Leaves: diff}
			for _, tc := range []struct {
				corrupt bool
				want    byte
			}{{true, wire.AckMismatch}, {false, wire.AckOK}} {
				body := slices.Clone(data[c.Off : c.Off+leaf])
				if tc.corrupt {
					body[7] ^= 1
				}
				if v := verdictOf(t, l, 1, func(cb func(byte, string)) error { return w.WritePatch(l, p, body, cb) }); v != tc.want {
					t.Fatalf("patch (corrupt %v): verdict %d, want %d", tc.corrupt, v, tc.want)
				}
			}
			commitWhole(t, w, dir, data, "after a patch")
			wantOnly(t, dir, "f")
		}},
		{"a changed source does not resume", func(t *testing.T, k destKind, dir string) {
			first := k.open(t, dir, receive.Options{NoFsync: true})
			write(t, first.d, open(t, first.d, spec(1, data)), data, []int{0, 1}, nil)
			first.interrupt()
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			sp := spec(2, data)
			sp.MtimeNs++
			if have, _ := open(t, d, sp).Resume(); len(have) != 0 {
				t.Errorf("a changed source resumes %v", have)
			}
		}},
		{"a parked share is finished by the final pass", func(t *testing.T, k destKind, dir string) {
			d := k.open(t, dir, receive.Options{NoFsync: true}).d
			sh := &plan.Shares{Index: 0, Count: 2, ChunkSize: suiteChunk}
			lo, hi := sh.Range(4)
			sp := spec(1, data)
			sp.Shares, sp.Share = 2, 1
			w := open(t, d, sp)
			var idx []int
			for i := lo; i < hi; i++ {
				idx = append(idx, int(i))
			}
			write(t, d, w, data, idx, nil)
			if err := w.Park(ctx); err != nil {
				t.Fatalf("park: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "f")); err == nil {
				t.Fatal("a parked share put the file in place")
			}
			final := spec(2, data)
			final.Shares = 2
			w = open(t, d, final)
			_, done := w.Resume()
			got := map[int64]bool{}
			for _, c := range done {
				got[c.Index] = true
			}
			for i := lo; i < hi; i++ {
				if !got[i] {
					t.Fatalf("the final pass does not take parked chunk %d (done %v)", i, done)
				}
			}
			var rest []int
			for i := range 4 {
				if !got[int64(i)] {
					rest = append(rest, i)
				}
			}
			write(t, d, w, data, rest, nil)
			commitWhole(t, w, dir, data, "after the final pass")
			wantOnly(t, dir, "f")
		}},
		{"a read-only tree refuses the file", func(t *testing.T, k destKind, dir string) {
			d := k.open(t, dir, receive.Options{NoFsync: true, ReadOnly: true}).d
			var fe *FileError
			if _, err := d.Open(ctx, spec(1, data)); !errors.As(err, &fe) {
				t.Fatalf("open in a read-only tree: %v, want a FileError", err)
			}
			wantOnly(t, dir)
		}},
	}
	for _, k := range destKinds {
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) { tc.run(t, k, t.TempDir()) })
		}
	}
}
