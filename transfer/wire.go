package transfer

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/xfer-io/xfer/plan"
)

// ProtocolVersion is the version of the control protocol spoken by this
// build. Peers refuse a different major version in the handshake.
const ProtocolVersion = 2

// magic opens every connection, so that a peer that is not xfer (an HTTP
// server, an rsync daemon) is recognised at once.
const magic = "XFER"

// Control frame types.
const (
	fHello    byte = 1  // JSON hello: first frame on every connection
	fWelcome  byte = 2  // JSON welcome: the server's answer
	fExchange byte = 3  // transport set-up blob
	fAuth     byte = 4  // JSON client proof
	fAuthOK   byte = 5  // JSON server proof
	fAbort    byte = 6  // JSON {"error"}: the sender ends the session for this reason
	fReq      byte = 10 // JSON request
	fResp     byte = 11 // JSON response
	fEntries  byte = 12 // binary batch of listing entries for a request
	fEvent    byte = 13 // JSON progress event for a request
	fPing     byte = 14 // keep-alive, empty
	// 15-19 are the content-addressed store's (see cas.go).
	fCASFirst byte = 15
	fCASLast  byte = 19
)

// frameHeaderLen is the size of a control frame header:
// [type u8][reserved u8 u8 u8][length u32 little-endian].
const frameHeaderLen = 8

// DefaultMaxFrame bounds a control frame's payload; larger frames are a
// protocol error and close the connection before anything is allocated.
const DefaultMaxFrame = 8 << 20

// ErrFrameTooLarge is returned when a peer announces a frame above the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// frameReader reads length-checked frames.
type frameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
	// mem, when set, supplies buffers for frames above smallFrame from a
	// session's receive budget; big is the one lent for the last frame.
	mem *sessionMem
	big []byte
}

// smallFrame is the largest frame read into the reader's own buffer when
// it has a budget; larger ones borrow from it, one at a time.
const smallFrame = 64 << 10

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// read returns the next frame. The payload is valid until the next call.
func (fr *frameReader) read() (byte, []byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, nil, fmt.Errorf("bad frame header %x", h)
	}
	if int64(n) > int64(fr.max) {
		return 0, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, fr.max)
	}
	p, err := fr.alloc(int(n))
	if err != nil {
		return 0, nil, err
	}
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[0], p, nil
}

// alloc returns a buffer for an n-byte frame (after the length check),
// giving back the one lent for the previous frame.
func (fr *frameReader) alloc(n int) ([]byte, error) {
	fr.release()
	if fr.mem == nil || n <= smallFrame {
		if cap(fr.buf) < n {
			fr.buf = make([]byte, n)
		}
		return fr.buf[:n], nil
	}
	b, err := fr.mem.get(n)
	if err != nil {
		return nil, fmt.Errorf("receiving a %d-byte frame: %w", n, err)
	}
	fr.big = b
	return b, nil
}

// release gives back the buffer lent for the last frame, if any.
func (fr *frameReader) release() {
	if fr.big != nil {
		fr.mem.put(fr.big)
		fr.big = nil
	}
}

// appendFrame appends a frame to dst.
func appendFrame(dst []byte, typ byte, payload []byte) []byte {
	var h [frameHeaderLen]byte
	h[0] = typ
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// writeFrame writes one frame with a single Write call.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(appendFrame(make([]byte, 0, frameHeaderLen+len(payload)), typ, payload))
	return err
}

func writeJSONFrame(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

// enc is a tiny append-only binary encoder for hot messages (listings,
// chunk headers, small-file batches).
type enc struct{ b []byte }

func (e *enc) u8(v uint8)     { e.b = append(e.b, v) }
func (e *enc) uvar(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) svar(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(p []byte) { e.uvar(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) str(s string)   { e.uvar(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) raw(p []byte)   { e.b = append(e.b, p...) }

// dec decodes what enc wrote; the first error sticks and every later read
// returns zero values, so callers check err once at the end.
type dec struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated message")

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) u8() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvar() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) svar() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvar()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(errShort)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// appendEntry encodes a listing entry.
func appendEntry(e *enc, en *plan.Entry) {
	e.str(en.Path)
	e.u8(uint8(en.Type))
	e.svar(en.Size)
	e.uvar(uint64(en.Mode))
	e.svar(en.MtimeNs)
	e.str(en.Target)
	e.bytes(en.Digest)
	e.uvar(en.Ino)
	e.uvar(en.Nlink)
	e.str(en.Err)
}

// maxEntryErr bounds the reason a listing entry gives for being unreadable.
const maxEntryErr = 1024

// readEntry decodes a listing entry and validates what a hostile peer could
// get wrong.
func readEntry(d *dec) (plan.Entry, error) {
	var en plan.Entry
	en.Path = d.str()
	en.Type = plan.Type(d.u8())
	en.Size = d.svar()
	en.Mode = uint32(d.uvar())
	en.MtimeNs = d.svar()
	en.Target = d.str()
	if dg := d.bytes(); len(dg) > 0 {
		en.Digest = append([]byte(nil), dg...)
	}
	en.Ino = d.uvar()
	en.Nlink = d.uvar()
	en.Err = d.str()
	if d.err != nil {
		return en, d.err
	}
	if en.Type < plan.TypeFile || en.Type > plan.TypeOther || en.Size < 0 || en.Mode > 07777 || len(en.Err) > maxEntryErr {
		return en, fmt.Errorf("invalid listing entry %q", en.Path)
	}
	if err := validRel(en.Path); err != nil || en.Path == "" {
		return en, fmt.Errorf("invalid listing entry path %q", en.Path)
	}
	return en, nil
}

// minEntryLen is the smallest encoding of a listing entry (a one-byte
// path, every number one byte).
const minEntryLen = 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1

// decodeEntries decodes an entries frame: the request id and its batch.
// The count is checked against listBatch and against what the frame can
// hold before the batch is allocated.
func decodeEntries(p []byte) (uint64, []plan.Entry, error) {
	d := &dec{b: p}
	id := d.uvar()
	n := d.uvar()
	if d.err != nil || n > listBatch || n > uint64(len(d.b)/minEntryLen) {
		return 0, nil, errors.New("bad entries frame")
	}
	batch := make([]plan.Entry, 0, n)
	for i := uint64(0); i < n; i++ {
		e, err := readEntry(d)
		if err != nil {
			return 0, nil, err
		}
		batch = append(batch, e)
	}
	return id, batch, nil
}

// readFrameExact reads one frame straight from r with no read-ahead, for
// connections handed to a transport afterwards.
func readFrameExact(r io.Reader, max int) (byte, []byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, nil, fmt.Errorf("bad frame header %x", h)
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if int64(n) > int64(max) {
		return 0, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, max)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}
