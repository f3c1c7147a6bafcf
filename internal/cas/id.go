package cas

import (
	"encoding/hex"
	"fmt"
)

// ID names an object: the BLAKE3-256 digest of its content. Its String form
// (64 lower-case hex digits) is what b3sum prints for the same content.
type ID [32]byte

// ParseID parses the 64-hex-digit form of an ID (either case).
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("cas: parse id %q: want %d hex digits, have %d", s, 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("cas: parse id %q: %w", s, err)
	}
	return id, nil
}

// String returns the 64 lower-case hex digits of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
