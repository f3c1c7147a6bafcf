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
