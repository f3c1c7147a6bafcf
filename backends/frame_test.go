package backends_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/xfer-io/xfer/backends"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		hdr, payload uint32
		wantErr      string
	}{
		{0, 0, ""},
		{backends.MaxHeader, backends.MaxPayload, ""},
		{backends.MaxHeader + 1, 0, "header"},
		{0, backends.MaxPayload + 1, "payload"},
		{^uint32(0), ^uint32(0), "header"},
	}
	for _, tc := range tests {
		var b [backends.PrefixLen]byte
		binary.LittleEndian.PutUint32(b[:], tc.hdr)
		binary.LittleEndian.PutUint32(b[4:], tc.payload)
		h, p, err := backends.ParsePrefix(b[:])
		if tc.wantErr == "" {
			if err != nil || h != int(tc.hdr) || p != int(tc.payload) {
				t.Errorf("ParsePrefix(%d, %d) = %d, %d, %v", tc.hdr, tc.payload, h, p, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParsePrefix(%d, %d) error %v, want one about the %s", tc.hdr, tc.payload, err, tc.wantErr)
		}
	}
}
