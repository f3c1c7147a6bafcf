package e2e

// Stand-ins for peers on loopback: ports nobody listens on, services that
// answer with something other than xfer, and relays that sit between a
// client and a real server.

import (
	"io"
	"net"
	"sync"
	"testing"
)

// unusedAddr is a loopback address nobody listens on.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// listenLoopback listens on 127.0.0.1 until the test ends and runs handle
// for each connection in a goroutine of its own. Connections handle leaves
// open stay open, silent, until the test ends.
func listenLoopback(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	return ln
}

// fakePeer is a loopback service that writes greeting (if any) to each
// connection and then, when hangUp, closes it; otherwise it holds it
// open, silent, until the test ends. It returns the address.
func fakePeer(t *testing.T, greeting string, hangUp bool) string {
	t.Helper()
	return listenLoopback(t, func(c net.Conn) {
		if greeting != "" {
			c.Write([]byte(greeting))
		}
		if hangUp {
			c.Close()
		}
	}).Addr().String()
}

// relay listens on loopback until the test ends and joins each
// connection c to a new one, s, to target: what the server sends goes
// back to the client untouched; pump(c, s) forwards the other way (in its
// own goroutine) and closes s when it is done.
func relay(t *testing.T, target string, pump func(c, s net.Conn)) net.Listener {
	t.Helper()
	return listenLoopback(t, func(c net.Conn) {
		s, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		go func() { io.Copy(c, s); c.Close() }()
		pump(c, s)
	})
}
