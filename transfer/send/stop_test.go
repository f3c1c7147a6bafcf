package send

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/fsroot/fsroottest"
	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/transfer/receive"
	"github.com/xfer-io/xfer/transfer/wire"
)

// stopAtOpen is a destination that stops the run as soon as a file is
// open there: the moment a user's Ctrl-C meets a file whose chunks are
// being queued.
type stopAtOpen struct {
	Destination
	stop context.CancelFunc
}

func (d stopAtOpen) Open(ctx context.Context, spec wire.FileSpec) (FileWriter, error) {
	w, err := d.Destination.Open(ctx, spec)
	d.stop()
	return w, err
}

// TestStopWhileQueueing: a run stopped while a large file's chunks are
// being queued ends (it used to wait for ever on the chunks it had not
// queued), keeps the partial file, and the next run completes the file;
// for files of fewer and of more chunks than the queue holds, into each
// kind of destination.
func TestStopWhileQueueing(t *testing.T) {
	const chunk = 64 << 10
	for _, kind := range destKinds {
		for _, chunks := range []int{24, 200} {
			t.Run(fmt.Sprintf("%s/%d chunks", kind.name, chunks), func(t *testing.T) {
				src, dst := t.TempDir(), t.TempDir()
				data := bytes.Repeat([]byte("stop while queueing "), chunks*chunk/20+1)[:chunks*chunk]
				if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
					t.Fatal(err)
				}
				opt := wire.Options{ChunkSize: chunk, NoFsync: true}
				run := func(d Destination, ctx context.Context) error {
					done := make(chan error, 1)
					go func() {
						done <- Run(ctx, fsroottest.Open(t, src), "", d, "", opt, progress.Discard, progress.NewTally())
					}()
					select {
					case err := <-done:
						return err
					case <-time.After(20 * time.Second):
						t.Fatal("the run did not end within 20 s")
						return nil
					}
				}
				ctx, stop := context.WithCancel(context.Background())
				defer stop()
				d := kind.open(t, dst, receive.Options{NoFsync: true})
				if err := run(stopAtOpen{Destination: d.d, stop: stop}, ctx); !errors.Is(err, context.Canceled) {
					t.Fatalf("stopped run: %v, want it cancelled", err)
				}
				if _, err := os.Stat(filepath.Join(dst, "big")); err == nil {
					t.Fatal("the stopped run committed the file")
				}
				if parts, _ := filepath.Glob(filepath.Join(dst, ".xfer-*.part")); len(parts) != 1 {
					t.Fatalf("partial files after the stopped run: %q, want one", parts)
				}
				d.interrupt()
				d = kind.open(t, dst, receive.Options{NoFsync: true})
				if err := run(d.d, context.Background()); err != nil {
					t.Fatalf("the next run: %v", err)
				}
				if got, err := os.ReadFile(filepath.Join(dst, "big")); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("after the next run the file is not the source's (%v)", err)
				}
			})
		}
	}
}
