package backendtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

func TestPairConnsMatchByIndex(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 4
	// The dialer dials in reverse order; Conn(i) must still pair up.
	dc := make([]net.Conn, n)
	for i := n - 1; i >= 0; i-- {
		c, err := d.Conn(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		dc[i] = c
	}
	for i := 0; i < n; i++ {
		ac, err := a.Conn(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte{byte(i)}
		if _, err := dc[i].Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(ac, got); err != nil || got[0] != byte(i) {
			t.Fatalf("conn %d: read %v, %v", i, got, err)
		}
	}
}

func TestPairExchange(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := Random(maxBlob, 3) // larger than socket buffers: both write at once
	tests := []struct{ fromD, fromA []byte }{
		{[]byte("hello"), []byte("world")},
		{nil, []byte("x")},
		{big, big},
	}
	for i, tc := range tests {
		ch := async(func() error {
			got, err := a.Exchange(ctx, tc.fromA)
			if err == nil && string(got) != string(tc.fromD) {
				err = fmt.Errorf("acceptor got %d bytes, want %d", len(got), len(tc.fromD))
			}
			return err
		})
		got, err := d.Exchange(ctx, tc.fromD)
		if err != nil || string(got) != string(tc.fromA) {
			t.Fatalf("case %d: dialer got %d bytes, %v", i, len(got), err)
		}
		if err := <-ch; err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
	}
}

func TestPairHonoursContext(t *testing.T) {
	d, a := Pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := within(t, quick, "Exchange", func() error { _, err := d.Exchange(ctx, []byte("x")); return err }); err == nil {
		t.Error("Exchange without a peer succeeded")
	}
	if err := within(t, quick, "Conn", func() error { _, err := a.Conn(ctx, 0); return err }); err == nil {
		t.Error("accepting Conn without a peer succeeded")
	}
}
