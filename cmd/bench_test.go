package cmd

import (
	"testing"

	"github.com/xfer-io/xfer/internal/exitcode"
)

func TestBenchProtos(t *testing.T) {
	tests := []struct {
		proto string
		want  []string // nil: every usable transport (all)
		code  int
	}{
		{"auto", []string{"auto"}, 0},
		{"tcp", []string{"tcp"}, 0},
		{"rdma", []string{"rdma"}, 0}, // usable or not: Dial says why
		{"all", nil, 0},
		{"pigeon", nil, exitcode.Usage},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			got, skipped, err := benchProtos(tt.proto)
			if tt.code != 0 {
				if exitcode.Code(err) != tt.code {
					t.Fatalf("error %v, want exit %d", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				// all: every transport is measured or named as skipped, in
				// preference order, and tcp is always usable.
				if len(got)+len(skipped) != len(transportStatuses()) || len(got) == 0 || got[len(got)-1] != "tcp" {
					t.Fatalf("all: measure %v, skip %v", got, skipped)
				}
				return
			}
			if len(got) != 1 || got[0] != tt.want[0] || len(skipped) != 0 {
				t.Fatalf("got %v (skipped %v), want %v", got, skipped, tt.want)
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{1, "1 B"},
		{64, "64 B"},
		{1000, "1000 B"},
		{1024, "1 KiB"},
		{100_000, "100000 B"},
		{256 << 10, "256 KiB"},
		{1 << 20, "1 MiB"},
		{3 << 19, "1.5 MiB"},
		{64 << 20, "64 MiB"},
		{2 << 30, "2 GiB"},
		{5 << 29, "2.50 GiB"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
