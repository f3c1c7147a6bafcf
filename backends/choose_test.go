package backends

import (
	"errors"
	"testing"
)

func TestChoose(t *testing.T) {
	fail := errors.New("probe failed")
	cases := []struct {
		name string
		ms   []Measurement
		want string
		ok   bool
	}{
		{"none", nil, "", false},
		{"all failed", []Measurement{{Name: "rdma", Err: fail}, {Name: "tcp", Err: fail}}, "", false},
		{"zero rate", []Measurement{{Name: "tcp", BytesPerSec: 0}}, "", false},
		{"one", []Measurement{{Name: "tcp", BytesPerSec: 1e9}}, "tcp", true},
		{"fastest wins", []Measurement{{Name: "rdma", BytesPerSec: 0.9e9}, {Name: "tcp-zc", BytesPerSec: 2e9}, {Name: "tcp", BytesPerSec: 1.5e9}}, "tcp-zc", true},
		{"less preferred much faster", []Measurement{{Name: "tcp-zc", BytesPerSec: 1e9}, {Name: "tcp", BytesPerSec: 2e9}}, "tcp", true},
		{"preferred within margin", []Measurement{{Name: "tcp-zc", BytesPerSec: 1.95e9}, {Name: "uring", BytesPerSec: 2e9}}, "tcp-zc", true},
		{"preferred just outside margin", []Measurement{{Name: "tcp-zc", BytesPerSec: 1.79e9}, {Name: "uring", BytesPerSec: 2e9}}, "uring", true},
		{"failed one skipped", []Measurement{{Name: "rdma", BytesPerSec: 9e9, Err: fail}, {Name: "tcp", BytesPerSec: 1e9}}, "tcp", true},
		{"rdma over UCX tcp slower", []Measurement{{Name: "rdma", BytesPerSec: 1e9}, {Name: "tcp-zc", BytesPerSec: 2.1e9}, {Name: "uring", BytesPerSec: 1.7e9}, {Name: "tcp", BytesPerSec: 1.9e9}}, "tcp-zc", true},
		{"rdma on hardware faster", []Measurement{{Name: "rdma", BytesPerSec: 10e9}, {Name: "tcp-zc", BytesPerSec: 2.1e9}}, "rdma", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Choose(c.ms)
			if got != c.want || ok != c.ok {
				t.Errorf("Choose = %q, %v; want %q, %v", got, ok, c.want, c.ok)
			}
		})
	}
}
