package casnet

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xfer-io/xfer/internal/cas"
)

// TestFindDoesNotWait: the first holder found ends the search; a holder
// that does not answer is not waited for.
func TestFindDoesNotWait(t *testing.T) {
	has := func(ctx context.Context, addr string) (int64, error) {
		if addr == "hung" {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(10 * time.Second):
				return 0, errors.New("released")
			}
		}
		time.Sleep(20 * time.Millisecond)
		return 5, nil
	}
	start := time.Now()
	addr, _, err := Find(context.Background(), cas.ID{}, []string{"hung", "ok"}, 2, has)
	if err != nil || addr != "ok" {
		t.Fatalf("Find = %q, %v; want ok", addr, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Find took %s: it waited for the hung holder", d)
	}
}

func TestFind(t *testing.T) {
	var id cas.ID
	boom := errors.New("connection refused")
	tests := []struct {
		name     string
		holders  map[string]int64 // size by address; -1: lacks it
		failing  []string
		parallel int
		want     string
		wantErr  string // "", "none", "unreachable"
	}{
		{name: "one of three", holders: map[string]int64{"a": -1, "b": -1, "c": 42}, want: "c"},
		{name: "serially", holders: map[string]int64{"a": -1, "b": 7, "c": -1}, parallel: 1, want: "b"},
		{name: "a holder down", holders: map[string]int64{"a": -1, "c": 9}, failing: []string{"b"}, want: "c"},
		{name: "nobody has it", holders: map[string]int64{"a": -1, "b": -1}, failing: []string{"c"}, wantErr: "none"},
		{name: "no holders", wantErr: "none"},
		{name: "all down", failing: []string{"a", "b"}, wantErr: "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []string
			for a := range tc.holders {
				addrs = append(addrs, a)
			}
			addrs = append(addrs, tc.failing...)
			var inFlight, most atomic.Int32
			has := func(ctx context.Context, addr string) (int64, error) {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(time.Millisecond)
				if size, ok := tc.holders[addr]; ok {
					return size, nil
				}
				return 0, boom
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			addr, size, err := Find(ctx, id, addrs, tc.parallel, has)
			var nh *NoHolderError
			var un *UnreachableError
			switch tc.wantErr {
			case "":
				if err != nil || addr != tc.want || size != tc.holders[tc.want] {
					t.Fatalf("Find = %q, %d, %v; want %q", addr, size, err, tc.want)
				}
			case "none":
				if !errors.As(err, &nh) || !errors.Is(err, cas.ErrNotFound) || nh.Asked != len(addrs) || len(nh.Failed) != len(tc.failing) {
					t.Fatalf("Find error = %v (%+v), want no holder of %d asked", err, nh, len(addrs))
				}
			case "unreachable":
				if !errors.As(err, &un) || len(un.Failed) != len(addrs) || !errors.Is(err, boom) {
					t.Fatalf("Find error = %v, want unreachable", err)
				}
			}
			if tc.parallel == 1 && most.Load() > 1 {
				t.Errorf("asked %d at once, limit 1", most.Load())
			}
		})
	}
}
