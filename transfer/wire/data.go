package wire

import (
	"fmt"

	"github.com/xfer-io/xfer/internal/hashtree"
)

// Data-plane message kinds (first byte of a stream message header).
const (
	MsgChunk    byte = 1 // a chunk of a large file
	MsgAck      byte = 2 // the receiver's verdict on a chunk
	MsgBatch    byte = 3 // several small files, whole
	MsgBatchAck byte = 4 // per-file verdicts on a batch
	// 5-9 are the content-addressed store's (see cas.go).
	MsgCASFirst byte = 5
	MsgCASLast  byte = 9
	// 10-14 are `xfer bench`'s (see bench.go).
	MsgBenchFirst byte = 10
	MsgBenchLast  byte = 14
	// MsgPatch is a chunk of a large file sent as the leaves that differ
	// from the receiver's old bytes (see Patch); MsgAck answers it.
	MsgPatch byte = 15
)

// Chunk verdicts.
const (
	AckOK       byte = 0
	AckMismatch byte = 1 // digest did not match: send again
	AckFailed   byte = 2 // the file cannot be written: give up on it
)

// MaxChunkSize bounds --chunk-size and every chunk payload a receiver accepts.
const MaxChunkSize = 64 << 20

// maxBatchPayload bounds a small-file batch message.
const MaxBatchPayload = 16 << 20

// maxBatchFiles bounds the files of one batch a receiver accepts (senders
// put at most 1024 in one).
const MaxBatchFiles = 4096

// minSmallEntry is the smallest encoding of one file of a batch: a
// one-byte path and empty data (length bytes, mode, mtime, flag, digest).
// A batch declaring more files than its payload can hold at this size is
// refused before anything is allocated for them.
const MinSmallEntry = 1 + 1 + 1 + 1 + 1 + 32 + 1

// maxVerdictMsg bounds the message of one chunk or file verdict; longer
// ones (long paths) are cut, so that verdicts always fit a header.
const maxVerdictMsg = 2048

// verdictMsg cuts msg to maxVerdictMsg bytes.
func VerdictMsg(msg string) string {
	if len(msg) <= maxVerdictMsg {
		return msg
	}
	return msg[:maxVerdictMsg-3] + "..."
}

// chunkHeader encodes a chunk message's header. Whether the receiver
// checks the digest is the session's decision (Session.verify), never the
// message's.
func ChunkHeader(fid, idx uint64, off int64, digest hashtree.Digest) []byte {
	e := Enc{Buf: make([]byte, 0, 64+TagLen)}
	e.U8(MsgChunk)
	e.Uvar(fid)
	e.Uvar(idx)
	e.Uvar(uint64(off))
	e.Raw(digest[:])
	return e.Buf
}

// MaxPatchLeafBytes bounds the leaf digests one adopt answer carries
// (Resp.Leaves); missing chunks past it are sent whole.
const MaxPatchLeafBytes = 1 << 20

// Patch is the header of a MsgPatch: chunk Index of file FID at Off, whose
// digest (of the whole chunk, once assembled) is Digest, sent as the
// leaves of LeafSize bytes listed in Leaves (ascending); the payload is
// their bytes, one after the other.
type Patch struct {
	FID, Index uint64
	Off        int64
	Digest     hashtree.Digest
	LeafSize   int64
	Leaves     []int
}

// maxPatchBitmap bounds the leaf bitmap of a patch header.
const maxPatchBitmap = hashtree.MaxLeaves / 8

// Header encodes the patch as a message header: kind, fid, index, offset,
// digest, leaf size, then a bitmap of the leaves sent (uvarint length in
// bytes, bit i%8 of byte i/8 for leaf i).
func (p Patch) Header() []byte {
	e := Enc{Buf: make([]byte, 0, 64+maxPatchBitmap+TagLen)}
	e.U8(MsgPatch)
	e.Uvar(p.FID)
	e.Uvar(p.Index)
	e.Uvar(uint64(p.Off))
	e.Raw(p.Digest[:])
	e.Uvar(uint64(p.LeafSize))
	var bm []byte
	if n := len(p.Leaves); n > 0 {
		bm = make([]byte, p.Leaves[n-1]/8+1)
	}
	for _, i := range p.Leaves {
		bm[i/8] |= 1 << (i % 8)
	}
	e.Blob(bm)
	return e.Buf
}

// DecodePatch reads a patch header after its kind byte.
func DecodePatch(d *Dec) (Patch, error) {
	var p Patch
	p.FID, p.Index, p.Off = d.Uvar(), d.Uvar(), int64(d.Uvar())
	copy(p.Digest[:], d.Raw(32))
	p.LeafSize = int64(d.Uvar())
	bm := d.Blob()
	if d.Err != nil {
		return Patch{}, fmt.Errorf("bad patch header: %w", d.Err)
	}
	if len(bm) > maxPatchBitmap || p.Off < 0 {
		return Patch{}, fmt.Errorf("bad patch header: %d-byte leaf bitmap at offset %d", len(bm), p.Off)
	}
	for i := range len(bm) * 8 {
		if bm[i/8]&(1<<(i%8)) != 0 {
			p.Leaves = append(p.Leaves, i)
		}
	}
	return p, nil
}

// Request operations of the store.
const (
	OpCASHas  = "cas.has"
	OpCASStat = "cas.stat"
	OpCASGet  = "cas.get"
)

// Data message kinds of the store.
const (
	MsgCASPut    byte = 5 // bytes of a put; tid allocated by the sender
	MsgCASPutAck byte = 6 // the receiver's verdict on a put
	MsgCASGet    byte = 7 // bytes answering a cas.get; tid allocated by the receiver
)

// Flags of mCASPut and mCASGet.
const (
	CASFirst byte = 1 << 0 // first message of the transfer
	CASLast  byte = 1 << 1 // last message: the transfer's bytes are complete
	CASAbort byte = 1 << 2 // the sender gave up; string msg follows; no payload
	CASSize  byte = 1 << 3 // uvarint size follows (first message)
	CASHasID byte = 1 << 4 // [32]id follows (first message of a put)
)

// Verdicts of mCASPutAck.
const (
	CASAckOK      byte = 0
	CASAckCorrupt byte = 1 // the bytes do not hash to the announced id
	CASAckFailed  byte = 2 // not stored: I/O error, too many puts at once
	CASAckRefused byte = 3 // not stored: no store, or a read-only one
)

// Request operations and data message kinds of the benchmark.
const (
	OpBenchStart = "bench.start"
	OpBenchStop  = "bench.stop"

	MsgBenchData byte = 10 // bulk bytes, counted (and written in mode disk)
	MsgBenchPing byte = 11 // a small message the peer echoes
	MsgBenchPong byte = 12 // the echo
)

// PayloadCovered reports whether the payload of a data message of this
// kind goes through the MAC. Chunks are bound by their verified digest
// (a session's MAC binds them by their digest), and so are patches, whose
// assembled chunk is always checked against it; the bulk bytes of `xfer bench` are discarded.
func PayloadCovered(kind byte) bool {
	return kind != MsgChunk && kind != MsgPatch && kind != MsgBenchData
}
