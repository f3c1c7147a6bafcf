// Package mover is the Go client of `xfer daemon`, the node-local mover, and
// the codec of its protocol (docs/protocol.md): a binary request/response
// protocol over a Unix domain socket with which programs on a host read and
// write a content-addressed store, and have the daemon copy objects to and
// from `xfer serve --cas` peers.
//
// An object is named by its id: the BLAKE3-256 digest of its content as 64
// lower-case hex digits, exactly what b3sum prints.
//
//	c, err := mover.Dial("/run/xfer/mover.sock")
//	if err != nil { ... }
//	defer c.Close()
//	id, err := c.Write(ctx, []byte("hello"))   // store, get the id
//	data, err := c.Read(ctx, id)               // verified by the daemon
//	err = c.Send(ctx, id, "xfer://10.0.0.2:7878") // to a peer's store
//
// A Client is safe for concurrent use: each request takes a connection from
// a small pool. Batch sends many requests in one round trip, which the
// daemon runs concurrently.
//
// # Zero copy on the same host
//
// ReadMapped asks the daemon where an object lies in the store's files,
// maps the file read-only and returns a slice of the mapping: the bytes do
// not pass through the socket, and once an object's location is known a
// read costs a map lookup (well under a microsecond). The daemon verifies
// an object before it hands out its location; see ReadMapped for the
// guarantee, and Options.VerifyMapped to hash every read as well.
//
// # Errors
//
// A response other than OK is an *OpError, which errors.Is matches against
// ErrNotFound, ErrCorrupt and ErrPeer.
package mover
