package tcpzc

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the splice pipe's capacity asked for (the default
// fs.pipe-max-size); the kernel may grant less.
const pipeSize = 1 << 20

// RecvPayloadToFile writes the next n payload bytes of the current message
// to f at off, moving them socket -> pipe -> file with splice(2) so they
// never enter user space. Bytes the stream had already buffered are written
// with pwrite(2). If the file system cannot splice (or f is in O_APPEND
// mode), it falls back to read+pwrite through the pipe.
//
// When it pays: the bytes are copied once (socket pages into the page
// cache) instead of twice (into a user buffer, then into the page cache),
// and the receiver's CPU never touches them. That is worth it for large
// payloads (1 MiB and up) on a fast link when the receiver does not need the
// bytes in memory: hashing disabled, or verification that re-reads the file
// (from the page cache) afterwards. It does not pay when the receiver hashes
// as it receives (the bytes must reach user space anyway, so use
// RecvPayload), for small payloads (two splices per pipe-full cost more than
// one read), or on loopback, where the socket's pages are already a private
// copy and reading them is as cheap.
func (s *stream) RecvPayloadToFile(f *os.File, off int64, n int) error {
	if n < 0 || off < 0 {
		return fmt.Errorf("tcp-zc: RecvPayloadToFile: bad range %d+%d", off, n)
	}
	fc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("tcp-zc: RecvPayloadToFile %s: %w", f.Name(), err)
	}
	s.rx.mu.Lock()
	defer s.rx.mu.Unlock()
	if err := s.rxReady(); err != nil {
		return err
	}
	if n > s.rx.rem {
		return fmt.Errorf("tcp-zc: RecvPayloadToFile of %d bytes, but %d are left in the message", n, s.rx.rem)
	}
	var serr error
	if cerr := fc.Control(func(ffd uintptr) { serr = s.spliceToFile(int(ffd), off, n) }); cerr != nil {
		serr = cerr
	}
	if serr != nil {
		return s.rxFail("recv payload to "+f.Name(), serr)
	}
	return nil
}

func (s *stream) spliceToFile(ffd int, off int64, n int) error {
	if k := min(n, s.rx.w-s.rx.r); k > 0 {
		if err := pwriteAll(ffd, s.rx.buf[s.rx.r:s.rx.r+k], off); err != nil {
			return err
		}
		s.rx.r += k
		s.rx.rem -= k
		off += int64(k)
		n -= k
	}
	if n == 0 {
		return nil
	}
	if err := s.ensurePipe(); err != nil {
		return err
	}
	pr, pw := s.rx.pipe[0], s.rx.pipe[1]
	spliceOK := true
	for n > 0 {
		// socket -> pipe; the pipe is empty here, so EAGAIN means no data.
		var k int
		var opErr error
		err := s.rawRead(func(fd uintptr) bool {
			for {
				m, err := unix.Splice(int(fd), nil, pw, nil, min(n, s.rx.pipeSize), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case err != nil:
					opErr = fmt.Errorf("splice from socket: %w", err)
				case m == 0:
					opErr = fmt.Errorf("connection closed by peer: %w", io.ErrUnexpectedEOF)
				default:
					k = int(m)
				}
				return true
			}
		})
		if err == nil {
			err = opErr
		}
		if err != nil {
			return err
		}
		s.rx.rem -= k
		n -= k
		// pipe -> file.
		for k > 0 {
			if spliceOK {
				m, err := unix.Splice(pr, nil, ffd, &off, k, unix.SPLICE_F_MOVE)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EINVAL && m <= 0:
					spliceOK = false // O_APPEND, or a file system without splice_write
					continue
				case err != nil:
					return fmt.Errorf("splice to file: %w", err)
				}
				k -= int(m)
				continue
			}
			m, err := copyPipeToFile(pr, ffd, off, k, s.rx.buf)
			off += int64(m)
			k -= m
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ensurePipe creates the stream's splice pipe on first use.
func (s *stream) ensurePipe() error {
	if s.rx.pipe[0] >= 0 {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe2: %w", err)
	}
	size, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		// Above fs.pipe-max-size for this user: keep the default size.
		size, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return fmt.Errorf("pipe size: %w", err)
		}
	}
	s.rx.pipe, s.rx.pipeSize = p, size
	return nil
}

// copyPipeToFile moves up to k bytes from the pipe to the file at off through
// buf, for files that cannot be spliced into.
func copyPipeToFile(pr, ffd int, off int64, k int, buf []byte) (int, error) {
	done := 0
	for done < k {
		m, err := unix.Read(pr, buf[:min(k-done, len(buf))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("read from pipe: %w", err)
		}
		if m == 0 {
			return done, errors.New("pipe drained early")
		}
		if err := pwriteAll(ffd, buf[:m], off+int64(done)); err != nil {
			return done, err
		}
		done += m
	}
	return done, nil
}

func pwriteAll(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("pwrite: %w", err)
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}
