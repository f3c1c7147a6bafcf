package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/plan"
)

// ProtocolVersion is the version of the control protocol spoken by this
// build. Peers refuse a different major version in the handshake.
const ProtocolVersion = 6

// Control frame types.
const (
	FrameHello    byte = 1  // JSON hello: first frame on every connection
	FrameWelcome  byte = 2  // JSON welcome: the server's answer
	FrameExchange byte = 3  // transport set-up blob
	FrameAuth     byte = 4  // JSON client proof
	FrameAuthOK   byte = 5  // JSON server proof
	FrameAbort    byte = 6  // JSON {"error"}: the sender ends the session for this reason
	FrameReq      byte = 10 // JSON request
	FrameResp     byte = 11 // JSON response
	FrameEntries  byte = 12 // binary batch of listing entries for a request
	FrameEvent    byte = 13 // JSON progress event for a request
	FramePing     byte = 14 // keep-alive, empty
	// 15-19 are the content-addressed store's (see cas.go).
	FrameCASFirst byte = 15
	FrameCASLast  byte = 19
)

// tagLen is the size of a message authentication tag, which ends every
// control frame and data message of a session that authenticates them.
const TagLen = 32

// listBatch is the number of entries per fEntries frame.
const ListBatch = 512

// frameHeaderLen is the size of a control frame header:
// [type u8][reserved u8 u8 u8][length u32 little-endian].
const FrameHeaderLen = 8

// DefaultMaxFrame bounds a control frame's payload; larger frames are a
// protocol error and close the connection before anything is allocated.
const DefaultMaxFrame = 8 << 20

// ErrFrameTooLarge is returned when a peer announces a frame above the limit.
var ErrFrameTooLarge = errors.New("frame too large")

// frameReader reads length-checked frames.
type FrameReader struct {
	r   *bufio.Reader
	Max int
	buf []byte
	// mem, when set, supplies buffers for frames above smallFrame from a
	// session's receive budget; big is the one lent for the last frame.
	Mem Buffers
	big []byte
}

// Buffers lends the buffers for large frames, from a receive budget.
type Buffers interface {
	// Get returns a buffer of n bytes, or an error when the budget
	// cannot hold it.
	Get(n int) ([]byte, error)
	// Put gives back a buffer Get returned.
	Put(b []byte)
}

// smallFrame is the largest frame read into the reader's own buffer when
// it has a budget; larger ones borrow from it, one at a time.
const smallFrame = 64 << 10

func NewFrameReader(r io.Reader, max int) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), Max: max}
}

// read returns the next frame. The payload is valid until the next call.
func (fr *FrameReader) Read() (byte, []byte, error) {
	var h [FrameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[4:])
	if h[1] != 0 || h[2] != 0 || h[3] != 0 {
		return 0, nil, fmt.Errorf("bad frame header %x", h)
	}
	if int64(n) > int64(fr.Max) {
		return 0, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, fr.Max)
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
func (fr *FrameReader) alloc(n int) ([]byte, error) {
	fr.Release()
	if fr.Mem == nil || n <= smallFrame {
		if cap(fr.buf) < n {
			fr.buf = make([]byte, n)
		}
		return fr.buf[:n], nil
	}
	b, err := fr.Mem.Get(n)
	if err != nil {
		return nil, fmt.Errorf("receiving a %d-byte frame: %w", n, err)
	}
	fr.big = b
	return b, nil
}

// release gives back the buffer lent for the last frame, if any.
func (fr *FrameReader) Release() {
	if fr.big != nil {
		fr.Mem.Put(fr.big)
		fr.big = nil
	}
}

// appendFrame appends a frame to dst.
func AppendFrame(dst []byte, typ byte, payload []byte) []byte {
	var h [FrameHeaderLen]byte
	h[0] = typ
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// writeFrame writes one frame with a single Write call.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, FrameHeaderLen+len(payload)), typ, payload))
	return err
}

// WriteMessage writes control message m as one frame of type typ.
func WriteMessage(w io.Writer, typ byte, m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	return WriteFrame(w, typ, b)
}

// enc is a tiny append-only binary encoder for hot messages (listings,
// chunk headers, small-file batches).
type Enc struct{ Buf []byte }

func (e *Enc) U8(v uint8)    { e.Buf = append(e.Buf, v) }
func (e *Enc) Uvar(v uint64) { e.Buf = binary.AppendUvarint(e.Buf, v) }
func (e *Enc) Svar(v int64)  { e.Buf = binary.AppendVarint(e.Buf, v) }
func (e *Enc) Blob(p []byte) { e.Uvar(uint64(len(p))); e.Buf = append(e.Buf, p...) }
func (e *Enc) Str(s string)  { e.Uvar(uint64(len(s))); e.Buf = append(e.Buf, s...) }
func (e *Enc) Raw(p []byte)  { e.Buf = append(e.Buf, p...) }

// dec decodes what enc wrote; the first error sticks and every later read
// returns zero values, so callers check err once at the end.
type Dec struct {
	Buf []byte
	Err error
}

var errShort = errors.New("truncated message")

func (d *Dec) Fail(err error) {
	if d.Err == nil {
		d.Err = err
	}
}

func (d *Dec) U8() uint8 {
	if d.Err != nil || len(d.Buf) < 1 {
		d.Fail(errShort)
		return 0
	}
	v := d.Buf[0]
	d.Buf = d.Buf[1:]
	return v
}

func (d *Dec) Uvar() uint64 { return varint(d, binary.Uvarint) }

func (d *Dec) Svar() int64 { return varint(d, binary.Varint) }

// varint reads one varint with read (binary.Uvarint or binary.Varint).
func varint[T uint64 | int64](d *Dec, read func([]byte) (T, int)) T {
	if d.Err != nil {
		return 0
	}
	v, n := read(d.Buf)
	if n <= 0 {
		d.Fail(errShort)
		return 0
	}
	d.Buf = d.Buf[n:]
	return v
}

func (d *Dec) Blob() []byte {
	n := d.Uvar()
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.Buf)) {
		d.Fail(errShort)
		return nil
	}
	p := d.Buf[:n:n]
	d.Buf = d.Buf[n:]
	return p
}

func (d *Dec) Str() string { return string(d.Blob()) }

func (d *Dec) Raw(n int) []byte {
	if d.Err != nil {
		return nil
	}
	if n < 0 || n > len(d.Buf) {
		d.Fail(errShort)
		return nil
	}
	p := d.Buf[:n:n]
	d.Buf = d.Buf[n:]
	return p
}

// appendEntry encodes a listing entry.
func AppendEntry(e *Enc, en *plan.Entry) {
	e.Str(en.Path)
	e.U8(uint8(en.Type))
	e.Svar(en.Size)
	e.Uvar(uint64(en.Mode))
	e.Svar(en.MtimeNs)
	e.Str(en.Target)
	e.Blob(en.Digest)
	e.Uvar(en.Ino)
	e.Uvar(en.Nlink)
	e.Str(en.Err)
	e.Uvar(uint64(en.Uid))
	e.Uvar(uint64(en.Gid))
	e.U8(uint8(en.Special))
	e.Uvar(en.Rdev)
}

// maxEntryErr bounds the reason a listing entry gives for being unreadable.
const maxEntryErr = 1024

// readEntry decodes a listing entry and validates what a hostile peer could
// get wrong.
func ReadEntry(d *Dec) (plan.Entry, error) {
	var en plan.Entry
	en.Path = d.Str()
	en.Type = plan.Type(d.U8())
	en.Size = d.Svar()
	en.Mode = uint32(d.Uvar())
	en.MtimeNs = d.Svar()
	en.Target = d.Str()
	if dg := d.Blob(); len(dg) > 0 {
		en.Digest = append([]byte(nil), dg...)
	}
	en.Ino = d.Uvar()
	en.Nlink = d.Uvar()
	en.Err = d.Str()
	uid, gid := d.Uvar(), d.Uvar()
	en.Special = fsroot.Special(d.U8())
	en.Rdev = d.Uvar()
	if d.Err != nil {
		return en, d.Err
	}
	if en.Type < plan.TypeFile || en.Type > plan.TypeOther || en.Size < 0 || en.Mode > 07777 || len(en.Err) > maxEntryErr ||
		uid > math.MaxUint32 || gid > math.MaxUint32 || en.Special > fsroot.SpecialBlock {
		return en, fmt.Errorf("invalid listing entry %q", en.Path)
	}
	en.Uid, en.Gid = uint32(uid), uint32(gid)
	if err := ValidRel(en.Path); err != nil || en.Path == "" {
		return en, fmt.Errorf("invalid listing entry path %q", en.Path)
	}
	return en, nil
}

// minEntryLen is the smallest encoding of a listing entry (a one-byte
// path, every number one byte).
const minEntryLen = 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1

// decodeEntries decodes an entries frame: the request id and its batch.
// The count is checked against listBatch and against what the frame can
// hold before the batch is allocated.
func DecodeEntries(p []byte) (uint64, []plan.Entry, error) {
	d := &Dec{Buf: p}
	id := d.Uvar()
	n := d.Uvar()
	if d.Err != nil || n > ListBatch || n > uint64(len(d.Buf)/minEntryLen) {
		return 0, nil, errors.New("bad entries frame")
	}
	batch := make([]plan.Entry, 0, n)
	for i := uint64(0); i < n; i++ {
		e, err := ReadEntry(d)
		if err != nil {
			return 0, nil, err
		}
		batch = append(batch, e)
	}
	return id, batch, nil
}

// readFrameExact reads one frame straight from r with no read-ahead, for
// connections handed to a transport afterwards.
func ReadFrameExact(r io.Reader, max int) (byte, []byte, error) {
	var h [FrameHeaderLen]byte
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
