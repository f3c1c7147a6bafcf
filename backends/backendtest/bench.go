package backendtest

import (
	"sync"
	"testing"

	"github.com/xfer-io/xfer/backends"
)

// Bench measures one-way throughput of tr: b.N messages of size payload
// bytes (plus a 64-byte header) spread over streams streams, sent with Send
// by the dialing side and received into a reused buffer by the accepting
// side. Bytes per second are reported through b.SetBytes.
func Bench(b *testing.B, tr backends.Transport, size, streams int) {
	bench(b, tr, size, streams, false)
}

// BenchSendFile is Bench with the payload sent by SendFile from a temporary
// file (in the page cache, as after a first read).
func BenchSendFile(b *testing.B, tr backends.Transport, size, streams int) {
	bench(b, tr, size, streams, true)
}

func bench(b *testing.B, tr backends.Transport, size, streams int, viaFile bool) {
	b.Helper()
	if err := tr.Probe(); err != nil {
		b.Skipf("%s not usable here: %v", tr.Name(), err)
	}
	s := Open(b, tr, streams, backends.Params{})
	payload := Random(size, 1)
	f := TempFile(b, payload, 0, 0)
	hdr := make([]byte, 64)

	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for i := 0; i < streams; i++ {
		n := b.N / streams
		if i < b.N%streams {
			n++
		}
		tx, rx := s.Dialer[i], s.Acceptor[i]
		wg.Add(2)
		go func() {
			defer wg.Done()
			for m := 0; m < n; m++ {
				var err error
				if viaFile {
					err = tx.SendFile(hdr, f, 0, size)
				} else {
					err = tx.Send(hdr, payload)
				}
				if err != nil {
					errs <- err
					tx.Close() // unblock the receiver
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			hbuf := make([]byte, backends.MaxHeader)
			buf := make([]byte, size)
			for m := 0; m < n; m++ {
				_, pl, err := rx.Recv(hbuf)
				if err == nil {
					err = rx.RecvPayload(buf[:pl])
				}
				if err != nil {
					errs <- err
					rx.Close() // unblock the sender
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchSends runs Bench over the sizes every transport reports, as
// sub-benchmarks named by size (and by stream count when it is not 1).
func BenchSends(b *testing.B, tr backends.Transport) {
	benchSizes(b, tr, false, []benchCase{{"1MiB", 1 << 20, 1}, {"1MiB/4streams", 1 << 20, 4}, {"4KiB", 4 << 10, 1}})
}

// BenchSendFiles runs BenchSendFile likewise.
func BenchSendFiles(b *testing.B, tr backends.Transport) {
	benchSizes(b, tr, true, []benchCase{{"1MiB", 1 << 20, 1}, {"4KiB", 4 << 10, 1}})
}

type benchCase struct {
	name          string
	size, streams int
}

func benchSizes(b *testing.B, tr backends.Transport, viaFile bool, cases []benchCase) {
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) { bench(b, tr, bc.size, bc.streams, viaFile) })
	}
}

// BenchPingPong measures round trips of one size-byte message on one
// stream: the peer echoes every message it receives.
func BenchPingPong(b *testing.B, tr backends.Transport, size int) {
	s := Open(b, tr, 1, backends.Params{})
	payload := Random(size, 3)
	echo := make(chan error, 1)
	go func() {
		hbuf, buf := make([]byte, backends.MaxHeader), make([]byte, size)
		for {
			h, n, err := s.Acceptor[0].Recv(hbuf)
			if err == nil {
				err = s.Acceptor[0].RecvPayload(buf[:n])
			}
			if err == nil {
				err = s.Acceptor[0].Send(h, buf[:n])
			}
			if err != nil {
				echo <- err
				return
			}
		}
	}()
	hbuf, buf := make([]byte, backends.MaxHeader), make([]byte, size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Dialer[0].Send([]byte("p"), payload); err != nil {
			b.Fatal(err)
		}
		_, n, err := s.Dialer[0].Recv(hbuf)
		if err == nil {
			err = s.Dialer[0].RecvPayload(buf[:n])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Dialer[0].Close()
	<-echo
}
