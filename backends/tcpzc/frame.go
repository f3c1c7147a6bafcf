package tcpzc

import (
	"encoding/binary"
	"fmt"

	"github.com/xfer-io/xfer/backends"
)

// The framing all socket transports share: a message is
//
//	header length  uint32, little endian, <= backends.MaxHeader
//	payload length uint32, little endian, <= MaxPayload
//	header bytes
//	payload bytes
const (
	prefixLen = 8
	// MaxPayload is the largest payload one message may carry.
	MaxPayload = 256 << 20
)

// putPrefix encodes the lengths of a message into b[:prefixLen].
func putPrefix(b []byte, hdrLen, payloadLen int) {
	binary.LittleEndian.PutUint32(b, uint32(hdrLen))
	binary.LittleEndian.PutUint32(b[4:], uint32(payloadLen))
}

// parsePrefix decodes and checks the lengths at the start of a message.
func parsePrefix(b []byte) (hdrLen, payloadLen int, err error) {
	h := binary.LittleEndian.Uint32(b)
	p := binary.LittleEndian.Uint32(b[4:])
	if h > backends.MaxHeader {
		return 0, 0, fmt.Errorf("peer sent a %d-byte header, over the %d-byte limit", h, backends.MaxHeader)
	}
	if p > MaxPayload {
		return 0, 0, fmt.Errorf("peer sent a %d-byte payload, over the %d-byte limit", p, MaxPayload)
	}
	return int(h), int(p), nil
}

// checkSizes refuses a message the framing cannot carry.
func checkSizes(hdrLen, payloadLen int) error {
	if hdrLen > backends.MaxHeader {
		return fmt.Errorf("header of %d bytes exceeds the %d-byte limit", hdrLen, backends.MaxHeader)
	}
	if payloadLen < 0 || payloadLen > MaxPayload {
		return fmt.Errorf("payload of %d bytes outside 0..%d", payloadLen, MaxPayload)
	}
	return nil
}
