package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, OK},
		{"plain", errors.New("boom"), Partial},
		{"usage", Usagef("bad flag %q", "x"), Usage},
		{"peer", Peerf("dial %s", "h"), Peer},
		{"wrapped peer", fmt.Errorf("copy: %w", Peerf("dial")), Peer},
		{"explicit", WithCode(Usage, errors.New("cfg")), Usage},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.want {
			t.Errorf("%s: Code = %d, want %d", tt.name, got, tt.want)
		}
	}
	if WithCode(Peer, nil) != nil {
		t.Error("WithCode(nil) must stay nil")
	}
}
