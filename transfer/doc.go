// Package transfer is the façade of xfer's transfer engine: Run moves a
// tree in whichever direction its two endpoints call for (local to local,
// push, pull, third party, and spread over cluster agents), with retries
// of lost connections; NewServer is `xfer serve`. It wires the packages
// that do the work:
//
//   - transfer/wire: the peer protocol, and nothing else (framing, typed
//     messages and their arguments, options, codecs, error kinds);
//   - transfer/session: one authenticated connection (dial, accept,
//     handshake, data lanes) and the handler tables services register in;
//   - transfer/send: the engine, against a Destination (local or remote);
//   - transfer/receive: the receiver and the file service of a tree;
//   - transfer/casnet, transfer/bench: the store and the benchmark over a
//     session;
//   - transfer/cluster: the coordinator of a transfer spread over agents.
//
// Imports point one way: cmd -> transfer -> send ->
// receive/casnet/bench/cluster -> session -> wire; internal/archtest
// fails the tests on any other.
//
// Files: run.go (Run and its four directions), agents.go (the cluster's
// Runner over endpoints), serve.go (NewServer and the jobs a peer asks
// for), push.go (--push-allow), resolve.go (overlap checks), api.go (the
// names commands use).
package transfer
