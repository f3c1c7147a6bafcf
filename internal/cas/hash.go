package cas

import (
	"encoding/binary"
	"math/bits"
	"runtime"
	"sync"

	"lukechampine.com/blake3/guts"
)

// The BLAKE3 tree is hashed here directly with lukechampine.com/blake3/guts
// so that the work can be split across cores and so that the chaining values
// (CVs) of 64 KiB groups can be kept as an outboard for verified range reads.
//
// BLAKE3's tree is left-complete: the root's left child covers the largest
// power-of-two number of chunks strictly smaller than the input, recursively.
// Consequently every 64 KiB-aligned group of chunks (and the final, possibly
// short, group) is exactly one node of the tree, and the nodes above the
// groups form a left-complete tree over the groups. That is what lets
// treeHasher treat groups the way lukechampine's Hasher treats chunks.

const (
	chunkSize   = guts.ChunkSize                // 1 KiB
	simdSize    = guts.MaxSIMD * guts.ChunkSize // 16 KiB, one CompressBuffer call
	groupChunks = 64
	// GroupSize is the granularity of range verification for standalone
	// objects: ReadAt hashes whole 64 KiB groups and checks them against the
	// object's outboard chaining values.
	GroupSize = groupChunks * chunkSize
	cvSize    = 32 // bytes of one chaining value in an outboard file
)

// subtreeNode returns the unfinalised node of the BLAKE3 subtree covering b,
// whose first chunk has index counter. b must be exactly one node of the tree
// (a power-of-two number of full chunks, or the tail of the input).
func subtreeNode(b []byte, counter uint64) guts.Node {
	if len(b) <= chunkSize {
		return guts.CompressChunk(b, &guts.IV, counter, 0)
	}
	if len(b) <= simdSize {
		if cap(b) >= simdSize {
			return guts.CompressBuffer((*[simdSize]byte)(b[:simdSize]), len(b), &guts.IV, counter, 0)
		}
		var buf [simdSize]byte
		copy(buf[:], b)
		return guts.CompressBuffer(&buf, len(b), &guts.IV, counter, 0)
	}
	chunks := (len(b) + chunkSize - 1) / chunkSize
	left := 1 << (bits.Len(uint(chunks-1)) - 1) // largest power of two < chunks
	l := subtreeNode(b[:left*chunkSize], counter)
	r := subtreeNode(b[left*chunkSize:], counter+uint64(left))
	return guts.ParentNode(guts.ChainingValue(l), guts.ChainingValue(r), &guts.IV, 0)
}

// rootID finalises n as the root node and returns the 256-bit digest.
func rootID(n guts.Node) ID {
	n.Flags |= guts.FlagRoot
	out := guts.WordsToBytes(guts.CompressNode(n))
	var id ID
	copy(id[:], out[:32])
	return id
}

// Sum returns the ID of b: its BLAKE3-256 digest, identical to b3sum's.
func Sum(b []byte) ID {
	if len(b) <= 2*GroupSize {
		return rootID(subtreeNode(b, 0))
	}
	var h treeHasher
	h.writeParallel(b, runtime.GOMAXPROCS(0))
	return h.sum()
}

// cvStack folds a stream of subtree chaining values (CVs), all of one size,
// into the root, keeping one CV per tree level as lukechampine's Hasher does
// for chunks: memory is O(log n) however long the stream is.
type cvStack struct {
	stack [64][8]uint32
	count uint64 // CVs pushed
}

func (c *cvStack) push(cv [8]uint32) {
	i := 0
	for c.count&(1<<i) != 0 {
		cv = guts.ChainingValue(guts.ParentNode(c.stack[i], cv, &guts.IV, 0))
		i++
	}
	c.stack[i] = cv
	c.count++
}

// rootNode returns the root node of the tree whose last subtree is node
// last (not yet pushed).
func (c *cvStack) rootNode(last guts.Node) guts.Node {
	n := last
	for i := 0; i < 64; i++ {
		if c.count&(1<<i) != 0 {
			n = guts.ParentNode(c.stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	return n
}

// rootFromCV returns the ID of the tree whose last group has CV last; at
// least one CV must have been pushed.
func (c *cvStack) rootFromCV(last [8]uint32) ID {
	var n guts.Node
	cv := last
	for i := 0; i < 64; i++ {
		if c.count&(1<<i) != 0 {
			n = guts.ParentNode(c.stack[i], cv, &guts.IV, 0)
			cv = guts.ChainingValue(n)
		}
	}
	return rootID(n)
}

// treeHasher hashes a stream of 64 KiB groups. Every group but the last must
// be full. It can emit every group's CV to an outboard writer.
type treeHasher struct {
	cvStack
	pending    guts.Node
	hasPending bool
	n          int64 // bytes consumed
	// cvs, when non-nil, receives the CV of every group (outboard).
	cvs func(cv [8]uint32) error
	err error
}

func (h *treeHasher) push(cv [8]uint32) {
	if h.cvs != nil && h.err == nil {
		h.err = h.cvs(cv)
	}
	h.cvStack.push(cv)
}

// addNode appends the node of the next group. The previous group, which is
// now known not to be the last, is folded into the stack.
func (h *treeHasher) addNode(n guts.Node, size int) {
	if h.hasPending {
		h.push(guts.ChainingValue(h.pending))
	}
	h.pending = n
	h.hasPending = true
	h.n += int64(size)
}

// groupIndex is the index of the next group to be added.
func (h *treeHasher) groupIndex() uint64 {
	if h.hasPending {
		return h.count + 1
	}
	return h.count
}

// writeParallel hashes b, which must start at a group boundary and be a
// whole number of groups unless it ends the stream, using up to workers
// goroutines.
func (h *treeHasher) writeParallel(b []byte, workers int) {
	ng := (len(b) + GroupSize - 1) / GroupSize
	if ng == 0 {
		return
	}
	g0 := h.groupIndex()
	nodes := make([]guts.Node, ng)
	hashRange := func(lo, hi int) {
		for g := lo; g < hi; g++ {
			end := min((g+1)*GroupSize, len(b))
			nodes[g] = subtreeNode(b[g*GroupSize:end], (g0+uint64(g))*groupChunks)
		}
	}
	workers = max(1, min(workers, ng))
	if workers == 1 {
		hashRange(0, ng)
	} else {
		var wg sync.WaitGroup
		per := (ng + workers - 1) / workers
		for lo := 0; lo < ng; lo += per {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				hashRange(lo, hi)
			}(lo, min(lo+per, ng))
		}
		wg.Wait()
	}
	for g, n := range nodes {
		h.addNode(n, min(GroupSize, len(b)-g*GroupSize))
	}
}

// sum returns the digest of everything added so far and, if an outboard
// writer is set, emits the last group's CV (only when there is more than one
// group: a single group is verified by the ID itself).
func (h *treeHasher) sum() ID {
	if !h.hasPending {
		return rootID(guts.CompressChunk(nil, &guts.IV, 0, 0))
	}
	if h.count > 0 && h.cvs != nil && h.err == nil {
		h.err = h.cvs(guts.ChainingValue(h.pending))
	}
	return rootID(h.rootNode(h.pending))
}

// groupCV returns the CV of group g of an object; b is that group's bytes.
func groupCV(b []byte, g uint64) [8]uint32 {
	return guts.ChainingValue(subtreeNode(b, g*groupChunks))
}

// rootFromCVs recomputes an object's ID from the CVs of all its groups
// (len(cvs) >= 2), as stored in an outboard file.
func rootFromCVs(cvs [][8]uint32) ID {
	var c cvStack
	for _, cv := range cvs[:len(cvs)-1] {
		c.push(cv)
	}
	return c.rootFromCV(cvs[len(cvs)-1])
}

func putCV(dst []byte, cv [8]uint32) {
	for i, w := range cv {
		binary.LittleEndian.PutUint32(dst[4*i:], w)
	}
}

func getCV(src []byte) (cv [8]uint32) {
	for i := range cv {
		cv[i] = binary.LittleEndian.Uint32(src[4*i:])
	}
	return cv
}
