package backends

import (
	"encoding/binary"
	"fmt"
)

// The framing all socket transports (tcp, tcp-zc, uring) share: a message is
//
//	header length  uint32, little endian, <= MaxHeader
//	payload length uint32, little endian, <= MaxPayload
//	header bytes
//	payload bytes
const (
	// PrefixLen is the size of the two lengths before a message.
	PrefixLen = 8
	// MaxPayload is the largest payload one message may carry.
	MaxPayload = 256 << 20
)

// PutPrefix encodes the lengths of a message into b[:PrefixLen].
func PutPrefix(b []byte, hdrLen, payloadLen int) {
	binary.LittleEndian.PutUint32(b, uint32(hdrLen))
	binary.LittleEndian.PutUint32(b[4:], uint32(payloadLen))
}

// ParsePrefix decodes and checks the lengths at the start of a message.
func ParsePrefix(b []byte) (hdrLen, payloadLen int, err error) {
	h := binary.LittleEndian.Uint32(b)
	p := binary.LittleEndian.Uint32(b[4:])
	if h > MaxHeader {
		return 0, 0, fmt.Errorf("peer sent a %d-byte header, over the %d-byte limit", h, MaxHeader)
	}
	if p > MaxPayload {
		return 0, 0, fmt.Errorf("peer sent a %d-byte payload, over the %d-byte limit", p, MaxPayload)
	}
	return int(h), int(p), nil
}

// CheckSizes refuses a message the framing cannot carry.
func CheckSizes(hdrLen, payloadLen int) error {
	if hdrLen > MaxHeader {
		return fmt.Errorf("header of %d bytes exceeds the %d-byte limit", hdrLen, MaxHeader)
	}
	if payloadLen < 0 || payloadLen > MaxPayload {
		return fmt.Errorf("payload of %d bytes outside 0..%d", payloadLen, MaxPayload)
	}
	return nil
}
