package receive

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/xfer-io/xfer/backends/tcp" // the transport the test uses
	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/transfer/session"
	"github.com/xfer-io/xfer/transfer/session/sessiontest"
	"github.com/xfer-io/xfer/transfer/wire"
)

// TestReadsOffered: OpRead is answered only where the handler's owner
// offers it (a server, to its clients), not by the file service alone
// (which a client registers on the destination it serves for a pull), and
// a read-only tree answers it.
func TestReadsOffered(t *testing.T) {
	cases := map[string]struct {
		reads bool
		want  string // the data, or the error
	}{
		"file service alone": {false, `unknown request "read"`},
		"with reads":         {true, "0123"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			root, dir := fsroottest.Temp(t)
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644); err != nil {
				t.Fatal(err)
			}
			h := NewHandler(root, Options{ReadOnly: true})
			srv := session.NewServer(session.ServerConfig{Services: func(s *session.Session, _ session.Grant) error {
				h.Register(s)
				if c.reads {
					h.RegisterReads(s)
				}
				return nil
			}})
			s := sessiontest.Dial(t, srv, session.DialOptions{Streams: 1})
			resp, err := s.Call(context.Background(), &wire.Req{Op: wire.OpRead, Path: "f", Read: &wire.ReadArgs{Count: 4}})
			got := ""
			switch {
			case err != nil:
				got = err.Error()
			case resp.Read != nil:
				got = string(resp.Read.Data)
			}
			if got != c.want {
				t.Errorf("read: got %q, want %q", got, c.want)
			}
		})
	}
}
