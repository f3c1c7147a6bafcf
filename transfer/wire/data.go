package wire

import "github.com/xfer-io/xfer/internal/hashtree"

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
// (a session's MAC binds them by their digest); the bulk bytes of `xfer bench` are discarded.
func PayloadCovered(kind byte) bool {
	return kind != MsgChunk && kind != MsgBenchData
}
