package transfer

import (
	"testing"

	"github.com/xfer-io/xfer/internal/exitcode"
)

func TestOptionsCheckersTransfers(t *testing.T) {
	for _, c := range []struct {
		opt Options
		ok  bool
	}{
		{Options{}, true},
		{Options{Checkers: 1, Transfers: 1}, true},
		{Options{Checkers: 256, Transfers: 256}, true},
		{Options{Checkers: -1}, false},
		{Options{Checkers: 257}, false},
		{Options{Transfers: -1}, false},
		{Options{Transfers: 257}, false},
	} {
		err := c.opt.Validate()
		if (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", c.opt, err, c.ok)
		}
		if err != nil && exitcode.Code(err) != exitcode.Usage {
			t.Errorf("Validate(%+v): exit code %d, want usage", c.opt, exitcode.Code(err))
		}
	}
	d := Options{}.withDefaults()
	if d.Checkers != DefaultCheckers || d.Transfers != DefaultTransfers {
		t.Errorf("defaults: checkers %d transfers %d", d.Checkers, d.Transfers)
	}
}
