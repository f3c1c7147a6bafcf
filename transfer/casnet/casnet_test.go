package casnet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/xfer-io/xfer/backends/tcp" // the transport the tests use

	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/session/sessiontest"

	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/internal/pattern"
)

// casServer runs a server exposing a fresh store (or a read-only one) and
// returns a session to it with the given transport, and the store.
func casServer(t *testing.T, proto string, readOnly bool) (*Client, *cas.Store) {
	t.Helper()
	store, err := cas.OpenOptions(t.TempDir(), cas.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := sessiontest.Dial(t, storeServer(store, readOnly), session.DialOptions{Proto: proto, Streams: 2, ConnectTimeout: 5 * time.Second})
	return NewClient(s), store
}

// storeServer is a session server whose sessions serve store (nil: none).
func storeServer(store *cas.Store, readOnly bool) *session.Server {
	return session.NewServer(session.ServerConfig{Services: func(s *session.Session, _ session.Grant) error {
		Serve(s, store, readOnly)
		return nil
	}})
}

func TestCASSession(t *testing.T) {
	sizes := []int{0, 1, 4096, cas.MaxPacked, cas.MaxPacked + 1, casMaxPayload + 12345, 3*casMaxPayload + 7}
	for _, proto := range []string{"tcp", "auto"} {
		t.Run(proto, func(t *testing.T) {
			s, remote := casServer(t, proto, false)
			local, err := cas.OpenOptions(t.TempDir(), cas.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			ctx := context.Background()
			for i, n := range sizes {
				data := pattern.Bytes(n, uint64(i))
				want := cas.Sum(data)
				// put from a reader, hashed on the fly
				id, sent, err := s.PutReader(ctx, bytes.NewReader(data), nil)
				if err != nil || id != want || sent != int64(n) {
					t.Fatalf("put reader %d bytes: %v %s %d, want %s", n, err, id, sent, want)
				}
				// get back, verified
				var out bytes.Buffer
				if got, err := s.Get(ctx, id, &out); err != nil || got != int64(n) || !bytes.Equal(out.Bytes(), data) {
					t.Fatalf("get %d bytes: %v, %d bytes, equal %v", n, err, got, bytes.Equal(out.Bytes(), data))
				}
				// fetch into the local store, then send it back from there
				if err := s.Fetch(ctx, id, local); err != nil {
					t.Fatalf("fetch %d bytes: %v", n, err)
				}
				if ok, _ := local.Has(id); !ok {
					t.Fatalf("fetch %d bytes: not in the local store", n)
				}
				if err := remote.Remove(ctx, id); err != nil {
					t.Fatal(err)
				}
				if err := s.SendObject(ctx, local, id); err != nil {
					t.Fatalf("send %d bytes: %v", n, err)
				}
				sz, err := s.Has(ctx, []cas.ID{id, cas.Sum([]byte("absent"))})
				if err != nil || sz[0] != int64(n) || sz[1] != -1 {
					t.Fatalf("has after send: %v %v", sz, err)
				}
			}
			st, err := s.Stat(ctx)
			if err != nil || st.Objects != int64(len(sizes)) {
				t.Fatalf("stat: %+v %v", st, err)
			}
		})
	}
}

func TestCASSessionFile(t *testing.T) {
	s, remote := casServer(t, "auto", false)
	ctx := context.Background()
	data := pattern.Bytes(2*casMaxPayload+99, 7)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := cas.Sum(data)
	// a range of the file, and the whole file
	part := cas.Sum(data[100 : 100+5000])
	if id, err := s.SendFile(ctx, f, 100, 5000, &part); err != nil || id != part {
		t.Fatalf("send range: %v", err)
	}
	if id, err := s.SendFile(ctx, f, 0, int64(len(data)), nil); err != nil || id != want {
		t.Fatalf("send file: %s %v, want %s", id, err, want)
	}
	// a wrong id is refused and nothing is stored
	wrong := cas.Sum([]byte("not this"))
	for _, n := range []int64{5000, int64(len(data))} {
		_, err := s.SendFile(ctx, f, 0, n, &wrong)
		if !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("send %d bytes with a wrong id: %v, want ErrCorrupt", n, err)
		}
	}
	if ok, _ := remote.Has(wrong); ok {
		t.Error("content stored under a wrong id")
	}
}

func TestCASSessionErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("absent", func(t *testing.T) {
		s, _ := casServer(t, "tcp", false)
		var out bytes.Buffer
		_, err := s.Get(ctx, cas.Sum([]byte("nothing")), &out)
		if !errors.Is(err, cas.ErrNotFound) || out.Len() != 0 {
			t.Fatalf("get absent: %v (%d bytes written)", err, out.Len())
		}
	})
	t.Run("read-only", func(t *testing.T) {
		s, remote := casServer(t, "tcp", true)
		for _, n := range []int{10, 2*casMaxPayload + 1} {
			_, _, err := s.PutReader(ctx, bytes.NewReader(pattern.Bytes(n, 1)), nil)
			if !errors.Is(err, ErrNoStore) {
				t.Fatalf("put %d bytes to a read-only store: %v", n, err)
			}
		}
		if st, _ := remote.Stat(); st.Objects != 0 {
			t.Fatal("read-only store was written")
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		s, remote := casServer(t, "tcp", false)
		for _, n := range []int{4096, 3 * cas.MaxPacked} {
			data := pattern.Bytes(n, 3)
			id, err := remote.PutBytes(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			loc, _ := remote.Locate(id)
			corrupt(t, loc.Path, loc.Offset+int64(n/2))
			var out bytes.Buffer
			if _, err := s.Get(ctx, id, &out); !errors.Is(err, cas.ErrCorrupt) {
				t.Errorf("get of a corrupt %d-byte object: %v, want ErrCorrupt", n, err)
			}
			local, _ := cas.OpenOptions(t.TempDir(), cas.Options{NoSync: true})
			if err := s.Fetch(ctx, id, local); !errors.Is(err, cas.ErrCorrupt) {
				t.Errorf("fetch of a corrupt %d-byte object: %v, want ErrCorrupt", n, err)
			}
			if ok, _ := local.Has(id); ok {
				t.Error("corrupt object fetched")
			}
			local.Close()
		}
	})
	t.Run("no store", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go storeServer(nil, false).Serve(cctx, ln)
		ss, err := session.Dial(ctx, ln.Addr().String(), session.DialOptions{Proto: "tcp"})
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		s := NewClient(ss)
		if _, err := s.Has(ctx, []cas.ID{{}}); !errors.Is(err, ErrNoStore) {
			t.Fatalf("has without a store: %v", err)
		}
		if _, _, err := s.PutReader(ctx, bytes.NewReader([]byte("x")), nil); !errors.Is(err, ErrNoStore) {
			t.Fatalf("put without a store: %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		s, _ := casServer(t, "tcp", false)
		cctx, cancel := context.WithCancel(ctx)
		r := &slowReader{left: 64 << 20, cancel: cancel}
		if _, _, err := s.PutReader(cctx, r, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled put: %v", err)
		}
		// The session still works.
		if _, err := s.Stat(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// slowReader cancels its put after the first few megabytes.
type slowReader struct {
	left   int
	read   int
	cancel func()
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	r.left -= n
	r.read += n
	if r.read > 9<<20 {
		r.cancel()
	}
	return n, nil
}

func corrupt(t *testing.T, path string, off int64) {
	t.Helper()
	os.Chmod(path, 0o644)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
