package mover

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is the first byte of a request: the operation. docs/protocol.md
// specifies each one byte for byte; the numbers are fixed, other programs
// speak them.
type Op uint8

// Operations.
const (
	OpRead  Op = 0x01 // id, offset, len (0: to the end) -> the bytes
	OpWrite Op = 0x02 // data (and optionally the id it must hash to) -> the id
	OpSend  Op = 0x03 // id, data = remote -> the object is stored on the peer
	OpFetch Op = 0x04 // id, data = remote -> the object is stored here
	OpBatch Op = 0x05 // data = whole requests -> data = their whole responses
	OpHas   Op = 0x06 // id -> OK with the size, or NOT_FOUND
	OpStat  Op = 0x07 // no id: store statistics; id: the object's size and kind

	// FlagMapped on READ asks for the object's location in the store's
	// files (status LOCATED) instead of its bytes, for a client on the same
	// host that maps the files read-only. The daemon may still answer with
	// bytes (status OK).
	FlagMapped Op = 0x80
	// OpReadMapped is READ with FlagMapped.
	OpReadMapped = OpRead | FlagMapped
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpReadMapped:
		return "read-mapped"
	case OpWrite:
		return "write"
	case OpSend:
		return "send"
	case OpFetch:
		return "fetch"
	case OpBatch:
		return "batch"
	case OpHas:
		return "has"
	case OpStat:
		return "stat"
	}
	return fmt.Sprintf("op-0x%02x", uint8(o))
}

// Status is the first byte of a response.
type Status uint8

// Statuses.
const (
	StatusOK       Status = 0x00 // success; data as the op defines
	StatusNotFound Status = 0x01 // no object with that id (here, or on the peer)
	StatusError    Status = 0x02 // failure; data is the error text (UTF-8)
	StatusCorrupt  Status = 0x03 // content does not hash to its id; data is the error text
	StatusPeer     Status = 0x04 // the peer could not be reached or failed; data is the error text
	StatusLocated  Status = 0x05 // READ|FlagMapped: data is a Location
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusNotFound:
		return "NOT_FOUND"
	case StatusError:
		return "ERROR"
	case StatusCorrupt:
		return "CORRUPT"
	case StatusPeer:
		return "PEER"
	case StatusLocated:
		return "LOCATED"
	}
	return fmt.Sprintf("STATUS_0x%02x", uint8(s))
}

// Sizes of the fixed parts of the frames.
const (
	// RequestHeaderSize is the size of a request without its id and data:
	// op u8, id_len u16, offset u64, len u64, data_len u32.
	RequestHeaderSize = 1 + 2 + 8 + 8 + 4
	// ResponseHeaderSize is the size of a response without its data:
	// status u8, data_len u32.
	ResponseHeaderSize = 1 + 4
	// IDLen is the length of an id: 64 lower-case hex digits, as b3sum
	// prints the BLAKE3-256 digest.
	IDLen = 64
	// MaxIDLen is the largest id_len a peer may announce; a longer one is a
	// malformed frame (the daemon answers ERROR and closes the connection).
	MaxIDLen = 1024
	// MaxData is the largest data_len the encoding allows.
	MaxData = 1<<32 - 1
	// MaxRemoteLen bounds the remote named in the data of SEND and FETCH.
	MaxRemoteLen = 4096
	// MaxBatchRequests bounds the requests in one BATCH.
	MaxBatchRequests = 1 << 16
)

// Errors of the codec.
var (
	// ErrShort means the bytes end before the frame does.
	ErrShort = errors.New("mover: truncated frame")
	// ErrFrame means a frame that cannot be valid whatever follows.
	ErrFrame = errors.New("mover: malformed frame")
)

// Request is one request frame.
type Request struct {
	Op     Op
	ID     string // "" or IDLen hex digits
	Offset uint64
	Len    uint64
	Data   []byte
}

// Response is one response frame.
type Response struct {
	Status Status
	Data   []byte
}

// Header is the part of a request before its data.
type Header struct {
	Op      Op
	ID      []byte // aliases the decoded bytes
	Offset  uint64
	Len     uint64
	DataLen uint32
}

// Size is the encoded size of the header.
func (h *Header) Size() int { return RequestHeaderSize + len(h.ID) }

// ParseHeader decodes the request header at the start of b. It returns
// ErrShort if b holds less than the whole header and an error wrapping
// ErrFrame if id_len exceeds MaxIDLen. h.ID aliases b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < 3 {
		return Header{}, ErrShort
	}
	idLen := int(binary.LittleEndian.Uint16(b[1:3]))
	if idLen > MaxIDLen {
		return Header{}, fmt.Errorf("%w: id_len %d exceeds %d", ErrFrame, idLen, MaxIDLen)
	}
	if len(b) < RequestHeaderSize+idLen {
		return Header{}, ErrShort
	}
	p := 3 + idLen
	return Header{
		Op:      Op(b[0]),
		ID:      b[3:p:p],
		Offset:  binary.LittleEndian.Uint64(b[p:]),
		Len:     binary.LittleEndian.Uint64(b[p+8:]),
		DataLen: binary.LittleEndian.Uint32(b[p+16:]),
	}, nil
}

// DecodeRequest decodes the whole request at the start of b and returns it
// with its encoded size. Data aliases b; ID is a copy.
func DecodeRequest(b []byte) (Request, int, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Request{}, 0, err
	}
	hs := h.Size()
	end := uint64(hs) + uint64(h.DataLen)
	if uint64(len(b)) < end {
		return Request{}, 0, ErrShort
	}
	return Request{Op: h.Op, ID: string(h.ID), Offset: h.Offset, Len: h.Len, Data: b[hs:end:end]}, int(end), nil
}

// DecodeBatch splits the data of a BATCH request into its requests. The
// data must hold whole requests and nothing else, at most max of them.
func DecodeBatch(b []byte, max int) ([]Request, error) {
	var out []Request
	for len(b) > 0 {
		if len(out) >= max {
			return nil, fmt.Errorf("%w: more than %d requests in a batch", ErrFrame, max)
		}
		r, n, err := DecodeRequest(b)
		if err != nil {
			if errors.Is(err, ErrShort) {
				return nil, fmt.Errorf("%w: batch: request %d truncated", ErrFrame, len(out))
			}
			return nil, fmt.Errorf("batch: request %d: %w", len(out), err)
		}
		out = append(out, r)
		b = b[n:]
	}
	return out, nil
}

// AppendHeader appends a request header announcing dataLen bytes of data.
func AppendHeader(dst []byte, op Op, id string, offset, length uint64, dataLen int) ([]byte, error) {
	if len(id) > MaxIDLen {
		return dst, fmt.Errorf("%w: id of %d bytes", ErrFrame, len(id))
	}
	if dataLen < 0 || int64(dataLen) > MaxData {
		return dst, fmt.Errorf("%w: %d bytes of data (limit %d)", ErrFrame, dataLen, int64(MaxData))
	}
	dst = append(dst, byte(op))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(id)))
	dst = append(dst, id...)
	dst = binary.LittleEndian.AppendUint64(dst, offset)
	dst = binary.LittleEndian.AppendUint64(dst, length)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(dataLen))
	return dst, nil
}

// AppendRequest appends the encoding of r to dst.
func AppendRequest(dst []byte, r *Request) ([]byte, error) {
	dst, err := AppendHeader(dst, r.Op, r.ID, r.Offset, r.Len, len(r.Data))
	if err != nil {
		return dst, err
	}
	return append(dst, r.Data...), nil
}

// AppendResponseHeader appends a response header announcing dataLen bytes.
func AppendResponseHeader(dst []byte, s Status, dataLen int) []byte {
	dst = append(dst, byte(s))
	return binary.LittleEndian.AppendUint32(dst, uint32(dataLen))
}

// AppendResponse appends the encoding of r to dst.
func AppendResponse(dst []byte, r *Response) ([]byte, error) {
	if int64(len(r.Data)) > MaxData {
		return dst, fmt.Errorf("%w: %d bytes of data (limit %d)", ErrFrame, len(r.Data), int64(MaxData))
	}
	return append(AppendResponseHeader(dst, r.Status, len(r.Data)), r.Data...), nil
}

// DecodeResponse decodes the whole response at the start of b and returns
// it with its encoded size. Data aliases b.
func DecodeResponse(b []byte) (Response, int, error) {
	if len(b) < ResponseHeaderSize {
		return Response{}, 0, ErrShort
	}
	n := uint64(binary.LittleEndian.Uint32(b[1:5]))
	end := ResponseHeaderSize + n
	if uint64(len(b)) < end {
		return Response{}, 0, ErrShort
	}
	return Response{Status: Status(b[0]), Data: b[ResponseHeaderSize:end:end]}, int(end), nil
}

// DecodeBatchResponse splits the data of a BATCH response into n responses.
func DecodeBatchResponse(b []byte, n int) ([]Response, error) {
	out := make([]Response, 0, n)
	for i := 0; i < n; i++ {
		r, k, err := DecodeResponse(b)
		if err != nil {
			return nil, fmt.Errorf("%w: batch response %d of %d truncated", ErrFrame, i, n)
		}
		out = append(out, r)
		b = b[k:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the %d responses of a batch", ErrFrame, len(b), n)
	}
	return out, nil
}

// Location is where a READ|FlagMapped found the object: the bytes of the
// whole object lie at Offset of the file at Path (device Dev, inode Ino),
// Size bytes long.
type Location struct {
	// Kind is LocPacked for an object in a pack file, whose whole content
	// the daemon has verified, or LocStandalone for an object in its own
	// file, of which the daemon verified only the range requested.
	Kind   uint8
	Offset uint64
	Size   uint64
	Dev    uint64
	Ino    uint64
	Path   string
}

// Location kinds.
const (
	LocPacked     = 1
	LocStandalone = 2
)

// locationFixed is the size of a Location without its path:
// kind u8, offset u64, size u64, dev u64, ino u64, path_len u16.
const locationFixed = 1 + 8 + 8 + 8 + 8 + 2

// AppendLocation appends the encoding of l to dst.
func AppendLocation(dst []byte, l *Location) []byte {
	dst = append(dst, l.Kind)
	dst = binary.LittleEndian.AppendUint64(dst, l.Offset)
	dst = binary.LittleEndian.AppendUint64(dst, l.Size)
	dst = binary.LittleEndian.AppendUint64(dst, l.Dev)
	dst = binary.LittleEndian.AppendUint64(dst, l.Ino)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(l.Path)))
	return append(dst, l.Path...)
}

// DecodeLocation decodes the data of a LOCATED response.
func DecodeLocation(b []byte) (Location, error) {
	if len(b) < locationFixed {
		return Location{}, fmt.Errorf("%w: location of %d bytes", ErrFrame, len(b))
	}
	l := Location{
		Kind:   b[0],
		Offset: binary.LittleEndian.Uint64(b[1:]),
		Size:   binary.LittleEndian.Uint64(b[9:]),
		Dev:    binary.LittleEndian.Uint64(b[17:]),
		Ino:    binary.LittleEndian.Uint64(b[25:]),
	}
	n := int(binary.LittleEndian.Uint16(b[33:]))
	if len(b) != locationFixed+n || (l.Kind != LocPacked && l.Kind != LocStandalone) {
		return Location{}, fmt.Errorf("%w: bad location", ErrFrame)
	}
	l.Path = string(b[locationFixed:])
	return l, nil
}

// Stats is the data of STAT without an id: the store's statistics, nine
// little-endian u64 in this order.
type Stats struct {
	Objects       uint64 // live objects
	Bytes         uint64 // their total content size
	PackedObjects uint64 // objects of at most 1 MiB, kept in pack files
	PackedBytes   uint64
	LargeObjects  uint64 // larger objects, each in its own file
	LargeBytes    uint64
	Packs         uint64 // pack files
	PackFileBytes uint64 // their size on disk, headers and dead space included
	DedupSaved    uint64 // bytes written again but not stored again
}

// StatsSize is the encoded size of Stats.
const StatsSize = 9 * 8

func (s *Stats) fields() []*uint64 {
	return []*uint64{&s.Objects, &s.Bytes, &s.PackedObjects, &s.PackedBytes, &s.LargeObjects,
		&s.LargeBytes, &s.Packs, &s.PackFileBytes, &s.DedupSaved}
}

// AppendStats appends the encoding of s to dst.
func AppendStats(dst []byte, s *Stats) []byte {
	for _, f := range s.fields() {
		dst = binary.LittleEndian.AppendUint64(dst, *f)
	}
	return dst
}

// DecodeStats decodes the data of a STAT response.
func DecodeStats(b []byte) (Stats, error) {
	var s Stats
	if len(b) != StatsSize {
		return s, fmt.Errorf("%w: stats of %d bytes, want %d", ErrFrame, len(b), StatsSize)
	}
	for i, f := range s.fields() {
		*f = binary.LittleEndian.Uint64(b[8*i:])
	}
	return s, nil
}

// ObjectStat is the data of STAT with an id: size u64, kind u8 (LocPacked
// or LocStandalone).
type ObjectStat struct {
	Size uint64
	Kind uint8
}

// ObjectStatSize is the encoded size of ObjectStat.
const ObjectStatSize = 9

// ValidID reports whether id is IDLen lower-case hex digits.
func ValidID(id []byte) bool {
	if len(id) != IDLen {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
