package mover_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/xfer-io/xfer/daemon"
	"github.com/xfer-io/xfer/internal/cas"
	"github.com/xfer-io/xfer/mover"
)

// exampleDaemon runs a daemon on a scratch store for the examples and
// returns its socket; a real program dials the daemon's socket instead
// (/run/xfer/mover.sock under systemd).
func exampleDaemon() (path string, stop func()) {
	dir, err := os.MkdirTemp("", "mover-example-")
	if err != nil {
		log.Fatal(err)
	}
	store, err := cas.OpenOptions(filepath.Join(dir, "cas"), cas.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := daemon.New(daemon.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	path = filepath.Join(dir, "mover.sock")
	ln, err := daemon.Listen(path, daemon.ListenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	return path, func() {
		cancel()
		<-done
		srv.Close()
		store.Close()
		os.RemoveAll(dir)
	}
}

// exampleClient is a client of a daemon from exampleDaemon, dialled as
// Example shows; stop closes both.
func exampleClient() (c *mover.Client, stop func()) {
	path, stopDaemon := exampleDaemon()
	c, err := mover.Dial(path)
	if err != nil {
		log.Fatal(err)
	}
	return c, func() {
		c.Close()
		stopDaemon()
	}
}

// A program stores content with the daemon and reads it back by its id.
func Example() {
	path, stop := exampleDaemon()
	defer stop()
	ctx := context.Background()

	c, err := mover.Dial(path)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	id, err := c.Write(ctx, []byte("hello, mover"))
	if err != nil {
		log.Fatal(err)
	}
	data, err := c.Read(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id)
	fmt.Println(string(data))
	// Output:
	// f0114b72da5d6c6d0507dc1584f34eaef7f42811db6718ea72138c3757e13587
	// hello, mover
}

// Read of an object the store lacks is an error matching ErrNotFound.
func ExampleClient_Read() {
	c, stop := exampleClient()
	defer stop()
	_, err := c.Read(context.Background(), "d33fb48ab5adff269ae172b29a6913ff04f6f266207a7a8e976f2ecd571d4492")
	fmt.Println(errors.Is(err, mover.ErrNotFound))
	// Output: true
}

// ReadMapped returns the object from a read-only mapping of the store's
// file: no copy through the socket, and no request at all once the object's
// location is known.
func ExampleClient_ReadMapped() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	id, _ := c.Write(ctx, []byte("one"))
	for range 2 {
		b, err := c.ReadMapped(ctx, id) // read-only; valid until c.Close
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(b))
	}
	// Output:
	// one
	// one
}

// Batch sends many requests in one round trip; the daemon runs them
// concurrently and answers in order, each with its own status.
func ExampleClient_Batch() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	one, _ := c.Write(ctx, []byte("one"))
	resps, err := c.Batch(ctx, []mover.Request{
		{Op: mover.OpRead, ID: one},
		{Op: mover.OpWrite, Data: []byte("two")},
		{Op: mover.OpHas, ID: "0000000000000000000000000000000000000000000000000000000000000000"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range resps {
		fmt.Printf("%v %s\n", r.Status, r.Data[:min(len(r.Data), 16)])
	}
	// Output:
	// OK one
	// OK dc770fff53f50835
	// NOT_FOUND cas: 00000000000
}

// Send copies an object to the store of an `xfer serve --cas` peer, which
// verifies it; Fetch copies one from a peer into the daemon's store.
func ExampleClient_Send() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	id, _ := c.Write(ctx, []byte("to the peer"))
	// The peer: xfer://HOST:PORT, or a remote name of the daemon's config.
	if err := c.Send(ctx, id, "xfer://10.0.0.2:7878"); err != nil {
		fmt.Println("send failed:", errors.Is(err, mover.ErrPeer))
	}
}
