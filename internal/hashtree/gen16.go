//go:build ignore

// gen16 writes compress16_amd64.s, the AVX-512 kernels of compress16.go:
// sixteen BLAKE3 compressions side by side, one per 32-bit lane of the
// 512-bit registers. lukechampine.com/blake3/guts has such a kernel too, but
// it loads each message word of the sixteen inputs with a gather
// (VPGATHERDD), which costs about 40% of its time on AMD Zen 4; these load
// sixteen 64-byte rows and transpose them in registers (as the official
// BLAKE3 C code does), four rounds of unpack and shuffle instructions.
//
//	go run gen16.go            (go generate ./internal/hashtree/)
//
// Register use: Z0-Z15 hold the state v0-v15 while compressing, Z16-Z31 the
// sixteen message words. The transpose runs on the same registers: rows
// are loaded into Z16-Z31 and the four rounds alternate between Z0-Z15 and
// Z16-Z31, so that the words end in Z16-Z31 (the generator follows every
// lane through the rounds to know which register holds which word).
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

// Offsets in params16 (compress16.go).
const (
	offCV    = 0   // [8][16]uint32: the chaining values, transposed
	offCtrLo = 512 // [16]uint32
	offCtrHi = 576 // [16]uint32
	offFlags = 640 // [16]uint32: flags of block j
	offKey   = 704 // [8]uint32
	offBlen  = 736 // uint32
	offBlks  = 740 // uint32: blocks of each chunk compressChunks16 compresses
)

type gen struct{ b bytes.Buffer }

func (g *gen) f(format string, args ...any) { fmt.Fprintf(&g.b, "\t"+format+"\n", args...) }

func z(i int) string { return fmt.Sprintf("Z%d", i) }

// lane is one 32-bit value of the transposed input: row (input) and word.
type lane struct{ row, word int }

// vec is the simulated content of a register.
type vec [16]lane

// unpack is VPUNPCK{L,H}{DQ,QDQ} on each 128-bit lane: the lane of the
// result is, in order, the words pick names (b's when fromB).
func unpack(a, b vec, pick [4]int, fromB [4]bool) (r vec) {
	for l := 0; l < 4; l++ {
		for k := 0; k < 4; k++ {
			src := a
			if fromB[k] {
				src = b
			}
			r[4*l+k] = src[4*l+pick[k]]
		}
	}
	return r
}

func unpackLo32(a, b vec) vec {
	return unpack(a, b, [4]int{0, 0, 1, 1}, [4]bool{false, true, false, true})
}
func unpackHi32(a, b vec) vec {
	return unpack(a, b, [4]int{2, 2, 3, 3}, [4]bool{false, true, false, true})
}
func unpackLo64(a, b vec) vec {
	return unpack(a, b, [4]int{0, 1, 0, 1}, [4]bool{false, false, true, true})
}
func unpackHi64(a, b vec) vec {
	return unpack(a, b, [4]int{2, 3, 2, 3}, [4]bool{false, false, true, true})
}

func shuf128(a, b vec, imm int) (r vec) {
	src := [4]vec{a, a, b, b}
	for l := 0; l < 4; l++ {
		sel := (imm >> (2 * l)) & 3
		copy(r[4*l:4*l+4], src[l][4*sel:4*sel+4])
	}
	return r
}

// transpose emits the transpose of the rows in Z16-Z31 and returns, for each
// message word, the register that holds it.
func (g *gen) transpose() [16]int {
	var regs [32]vec
	for i := 0; i < 16; i++ {
		for w := 0; w < 16; w++ {
			regs[16+i][w] = lane{i, w}
		}
	}
	op := func(name string, fn func(a, b vec) vec, dst, a, b int) {
		regs[dst] = fn(regs[a], regs[b])
		g.f("%s %s, %s, %s", name, z(b), z(a), z(dst))
	}
	shuf := func(imm, dst, a, b int) {
		regs[dst] = shuf128(regs[a], regs[b], imm)
		g.f("VSHUFI32X4 $0x%02x, %s, %s, %s", imm, z(b), z(a), z(dst))
	}
	// Round 1: 32-bit interleave, Z16-Z31 -> Z0-Z15.
	for p := 0; p < 8; p++ {
		op("VPUNPCKLDQ", unpackLo32, 2*p, 16+2*p, 16+2*p+1)
		op("VPUNPCKHDQ", unpackHi32, 2*p+1, 16+2*p, 16+2*p+1)
	}
	// Round 2: 64-bit interleave, Z0-Z15 -> Z16-Z31.
	for q := 0; q < 4; q++ {
		a, b := 4*q, 4*q+2
		op("VPUNPCKLQDQ", unpackLo64, 16+4*q, a, b)
		op("VPUNPCKHQDQ", unpackHi64, 16+4*q+1, a, b)
		op("VPUNPCKLQDQ", unpackLo64, 16+4*q+2, a+1, b+1)
		op("VPUNPCKHQDQ", unpackHi64, 16+4*q+3, a+1, b+1)
	}
	// Round 3: 128-bit lanes, Z16-Z31 -> Z0-Z15.
	for h := 0; h < 2; h++ {
		for k := 0; k < 4; k++ {
			shuf(0x88, 8*h+k, 16+8*h+k, 16+8*h+4+k)
			shuf(0xdd, 8*h+4+k, 16+8*h+k, 16+8*h+4+k)
		}
	}
	// Round 4: 128-bit lanes again, Z0-Z15 -> Z16-Z31.
	for k := 0; k < 8; k++ {
		shuf(0x88, 16+k, k, 8+k)
		shuf(0xdd, 16+8+k, k, 8+k)
	}
	var where [16]int
	for w := 0; w < 16; w++ {
		where[w] = -1
		for r := 16; r < 32; r++ {
			ok := true
			for i := 0; i < 16; i++ {
				if regs[r][i] != (lane{i, w}) {
					ok = false
					break
				}
			}
			if ok {
				where[w] = r
			}
		}
		if where[w] < 0 {
			log.Fatalf("transpose: no register holds word %d", w)
		}
	}
	return where
}

// rounds emits the seven rounds on v = Z0-Z15 with message word w in
// register msg[w].
func (g *gen) rounds(msg [16]int) {
	msgPermutation := [16]int{2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8}
	s := [16]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	for r := 0; r < 7; r++ {
		g.f("// round %d", r+1)
		g.g4([4][4]int{{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}},
			[4][2]int{{msg[s[0]], msg[s[1]]}, {msg[s[2]], msg[s[3]]}, {msg[s[4]], msg[s[5]]}, {msg[s[6]], msg[s[7]]}})
		g.g4([4][4]int{{0, 5, 10, 15}, {1, 6, 11, 12}, {2, 7, 8, 13}, {3, 4, 9, 14}},
			[4][2]int{{msg[s[8]], msg[s[9]]}, {msg[s[10]], msg[s[11]]}, {msg[s[12]], msg[s[13]]}, {msg[s[14]], msg[s[15]]}})
		var next [16]int
		for i := range next {
			next[i] = s[msgPermutation[i]]
		}
		s = next
	}
}

// g4 emits four independent G functions, interleaved step by step.
func (g *gen) g4(abcd [4][4]int, xy [4][2]int) {
	each := func(fn func(a, b, c, d, x, y int)) {
		for i := 0; i < 4; i++ {
			fn(abcd[i][0], abcd[i][1], abcd[i][2], abcd[i][3], xy[i][0], xy[i][1])
		}
	}
	half := func(first bool, r1, r2 int) {
		each(func(a, b, c, d, x, y int) { g.f("VPADDD %s, %s, %s", z(b), z(a), z(a)) })
		each(func(a, b, c, d, x, y int) {
			m := y
			if first {
				m = x
			}
			g.f("VPADDD %s, %s, %s", z(m), z(a), z(a))
		})
		each(func(a, b, c, d, x, y int) { g.f("VPXORD %s, %s, %s", z(a), z(d), z(d)) })
		each(func(a, b, c, d, x, y int) { g.f("VPRORD $%d, %s, %s", r1, z(d), z(d)) })
		each(func(a, b, c, d, x, y int) { g.f("VPADDD %s, %s, %s", z(d), z(c), z(c)) })
		each(func(a, b, c, d, x, y int) { g.f("VPXORD %s, %s, %s", z(c), z(b), z(b)) })
		each(func(a, b, c, d, x, y int) { g.f("VPRORD $%d, %s, %s", r2, z(b), z(b)) })
	}
	half(true, 16, 12)
	half(false, 8, 7)
}

// block emits one compression of the rows at DISP+i*stride(SI), using the
// chaining values in params (DX) and the flags of block CX, and stores the
// new chaining values back into params.
func (g *gen) block(stride int) {
	for i := 0; i < 16; i++ {
		g.f("VMOVDQU32 %d(SI), %s", i*stride, z(16+i))
	}
	if stride > 64 {
		// Ask for the next sixteen chunks, one chunk per block (SI
		// advances by a block, so chunk j of the next group is at
		// 16*stride + j*(stride-64) from here): reading sixteen rows
		// 1 KiB apart defeats the hardware prefetcher.
		for i := 0; i < 16; i++ {
			g.f("PREFETCHT1 %d(SI)(R8*1)", 16*stride+64*i)
		}
	}
	msg := g.transpose()
	for w := 0; w < 8; w++ {
		g.f("VMOVDQU32 %d(DX), %s", offCV+64*w, z(w))
	}
	for i := 0; i < 4; i++ {
		g.f("VPBROADCASTD iv16<>+%d(SB), %s", 4*i, z(8+i))
	}
	g.f("VMOVDQU32 %d(DX), Z12", offCtrLo)
	g.f("VMOVDQU32 %d(DX), Z13", offCtrHi)
	g.f("VPBROADCASTD %d(DX), Z14", offBlen)
	g.f("VPBROADCASTD %d(DX)(CX*4), Z15", offFlags)
	g.rounds(msg)
	for w := 0; w < 8; w++ {
		g.f("VPXORD %s, %s, %s", z(w+8), z(w), z(w))
		g.f("VMOVDQU32 %s, %d(DX)", z(w), offCV+64*w)
	}
}

// prologue loads the arguments and sets the chaining values to the key.
func (g *gen) prologue(name, inType string) {
	fmt.Fprintf(&g.b, "\n// func %s(out *[16][8]uint32, in %s, p *params16)\n", name, inType)
	fmt.Fprintf(&g.b, "TEXT ·%s(SB), NOSPLIT, $0-24\n", name)
	g.f("MOVQ out+0(FP), DI")
	g.f("MOVQ in+8(FP), SI")
	g.f("MOVQ p+16(FP), DX")
	for w := 0; w < 8; w++ {
		g.f("VPBROADCASTD %d(DX), Z0", offKey+4*w)
		g.f("VMOVDQU32 Z0, %d(DX)", offCV+64*w)
	}
	g.f("XORQ CX, CX")
}

// epilogue scatters the chaining values in Z0-Z7 to out, lane i to out[i].
func (g *gen) epilogue() {
	g.f("VMOVDQU32 seq32<>+0(SB), Z16")
	for w := 0; w < 8; w++ {
		g.f("KXNORW K1, K1, K1")
		g.f("VPSCATTERDD %s, K1, %d(DI)(Z16*1)", z(w), 4*w)
	}
	g.f("VZEROUPPER")
	g.f("RET")
}

func main() {
	var g gen
	g.b.WriteString("// Code generated by gen16.go; DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n\n")
	for i, w := range []uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a} {
		fmt.Fprintf(&g.b, "DATA iv16<>+%d(SB)/4, $0x%08x\n", 4*i, w)
	}
	g.b.WriteString("GLOBL iv16<>(SB), RODATA|NOPTR, $16\n\n")
	for i := 0; i < 16; i++ {
		fmt.Fprintf(&g.b, "DATA seq32<>+%d(SB)/4, $%d\n", 4*i, 32*i)
	}
	g.b.WriteString("GLOBL seq32<>(SB), RODATA|NOPTR, $64\n")

	// Sixteen chunks, 1024 bytes apart: the first p.blocks blocks of each
	// (sixteen for whole chunks; at least one).
	g.prologue("compressChunks16", "*[16 * 1024]byte")
	g.f("XORQ R8, R8")
	g.f("MOVL %d(DX), R9", offBlks)
	g.b.WriteString("loop:\n")
	g.block(1024)
	g.f("ADDQ $64, SI")
	g.f("ADDQ $960, R8")
	g.f("INCQ CX")
	g.f("CMPQ CX, R9")
	g.f("JB loop")
	g.epilogue()

	// Sixteen parents: one block each, the two children's chaining values
	// side by side, 64 bytes apart.
	g.prologue("compressParents16", "*[32][8]uint32")
	g.block(64)
	g.epilogue()

	if err := os.WriteFile("compress16_amd64.s", g.b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
