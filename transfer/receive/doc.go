// Package receive writes what a sender delivers into a tree, and serves a
// peer's requests against that tree.
//
// One file per duty:
//
//   - receiver.go: the Receiver of a session and Open, the announcement of
//     large files;
//   - partial.go: partial files beside their targets, resumed from what an
//     interrupted transfer left (journal.go: the journals that say which
//     chunks are written and verified; dirlock.go: the run lock);
//   - chunks.go: chunk verify-and-write, adoption of resumed chunks, and
//     patches: the leaf digests of a changed chunk's old bytes, and the
//     chunk assembled from them and the leaves that differ, verified
//     against the chunk's digest;
//   - commit.go: the durability logic: whole-file digest, attributes,
//     flush, rename (or park, or abandon: wire.CommitAction);
//   - batch.go, holes.go: small-file batches, written to unnamed files and
//     named after one flush (fdbudget.go bounds the unnamed files);
//   - meta.go: metadata operations (mkdir, symlink, link, delete, remove, setattrs)
//     and the directory attributes applied at finish; writable.go,
//     perms.go: read-only directories and what a server lets a peer make;
//   - service.go: Handler, the file service a session registers: listings,
//     stats, hashes, the destination's operations, jobs and tickets.
//
// The sender (transfer/send) reaches a Receiver either in process (its
// Local destination) or over a session through Handler.
package receive
