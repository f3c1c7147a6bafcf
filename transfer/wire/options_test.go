package wire

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
	d := Options{}.WithDefaults()
	if d.Checkers != DefaultCheckers || d.Transfers != DefaultTransfers {
		t.Errorf("defaults: checkers %d transfers %d", d.Checkers, d.Transfers)
	}
}

func TestShardValidate(t *testing.T) {
	for _, sh := range []Shard{{Index: 0, Count: 0}, {Index: -1, Count: 2}, {Index: 2, Count: 2}, {Index: 0, Count: MaxShards + 1}} {
		if err := (Options{Shard: &sh}).Validate(); err == nil {
			t.Errorf("shard %+v accepted", sh)
		}
	}
	if err := (Options{Shard: &Shard{Index: 1, Count: 2}}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestOptionsSafety(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	for _, c := range []struct {
		name string
		opt  Options
		ok   bool
	}{
		{"max-delete 0", Options{MaxDelete: n(0)}, true},
		{"max-delete negative", Options{MaxDelete: n(-1)}, false},
		{"backup dir", Options{BackupDir: ".bak"}, true},
		{"nested backup dir with suffix", Options{BackupDir: "old/run1", Suffix: ".old"}, true},
		{"backup dir absolute", Options{BackupDir: "/tmp/bak"}, false},
		{"backup dir leading out", Options{BackupDir: "../bak"}, false},
		{"backup dir not clean", Options{BackupDir: "./bak/"}, false},
		{"backup dir the destination", Options{BackupDir: "."}, false},
		{"suffix alone", Options{Suffix: "~"}, false},
		{"suffix with a slash", Options{BackupDir: "b", Suffix: "/x"}, false},
		{"suffix with NUL", Options{BackupDir: "b", Suffix: "a\x00"}, false},
	} {
		err := c.opt.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && exitcode.Code(err) != exitcode.Usage {
			t.Errorf("%s: exit code %d, want usage", c.name, exitcode.Code(err))
		}
	}
}
