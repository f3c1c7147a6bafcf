// Package send is the engine of a transfer: it walks the source and the
// destination, diffs them (plan/), and carries out the plan against a
// Destination.
//
//   - engine.go: dispatch of the plan's ops, small-file batching, chunk
//     sending with retries, the resume offer and each file's finish;
//   - destination.go: the Destination and FileWriter interfaces the engine
//     writes through (WriteChunk, Commit, Park, Abort), and Lane;
//   - local.go, remote.go: the two destinations, the receiver in process
//     and a peer over a session;
//   - bwlimit.go: --bwlimit, a wrapper around the lanes;
//   - dryrun.go: --dry-run, the plan printed instead of carried out;
//   - inflight.go, mapped.go, pathlist.go: files in flight for progress,
//     source chunks mapped from the page cache, the deletions spilled to
//     disk so a sync of a huge tree stays bounded in memory.
//
// A cluster's share of the work is chosen by plan.Shares.
package send
