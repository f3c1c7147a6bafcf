// Command gentree writes a synthetic directory tree for the benchmarks in
// scripts/bench-scale.sh: FILES regular files of random content spread over
// a two-level tree of directories (DIR/dNN/eNNN/fNNNNN), quickly (several
// writers in parallel, one pre-generated random pool, no per-file RNG).
//
//	go run ./scripts/gentree -files 1000000 -per-dir 1000 -min 1 -max 64 DIR
//	go run ./scripts/gentree -big 1073741824 FILE
//	go run ./scripts/gentree -scatter 10 -seed 3 FILE
//
// -scatter P overwrites P per mille of the 4 KiB blocks of an existing
// FILE, chosen at random (distinct), with random bytes.
//
// Sizes are uniform in [min, max] bytes. The output is deterministic for a
// given -seed.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

func main() {
	files := flag.Int("files", 1000, "number of files")
	perDir := flag.Int("per-dir", 1000, "files per leaf directory")
	fanout := flag.Int("fanout", 100, "leaf directories per top-level directory")
	minSz := flag.Int("min", 1, "smallest file, bytes")
	maxSz := flag.Int("max", 64, "largest file, bytes")
	big := flag.Int64("big", 0, "instead of a tree, write one file of this many random bytes")
	scatter := flag.Int("scatter", 0, "instead of a tree, overwrite this many per mille of the 4 KiB blocks of an existing file")
	seed := flag.Uint64("seed", 1, "random seed")
	workers := flag.Int("workers", 2*runtime.NumCPU(), "parallel writers")
	flag.Parse()
	if flag.NArg() != 1 || *minSz < 0 || *maxSz < *minSz || *perDir < 1 || *fanout < 1 {
		fmt.Fprintln(os.Stderr, "usage: gentree [-files N -per-dir N -fanout N -min B -max B | -big BYTES | -scatter PERMILLE] DIR|FILE")
		os.Exit(2)
	}
	if *scatter > 0 {
		if err := scatterBlocks(flag.Arg(0), *scatter, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "gentree:", err)
			os.Exit(1)
		}
		return
	}
	if *big > 0 {
		if err := writeBig(flag.Arg(0), *big, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "gentree:", err)
			os.Exit(1)
		}
		return
	}
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	pool := make([]byte, 1<<20+*maxSz)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	ndirs := (*files + *perDir - 1) / *perDir
	dirs := make(chan int, 64)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range dirs {
				if err := writeDir(flag.Arg(0), d, ndirs, *files, *perDir, *fanout, *minSz, *maxSz, *seed, pool); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for d := 0; d < ndirs; d++ {
		dirs <- d
	}
	close(dirs)
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "gentree:", firstErr)
		os.Exit(1)
	}
}

func writeDir(top string, d, ndirs, files, perDir, fanout, minSz, maxSz int, seed uint64, pool []byte) error {
	dir := filepath.Join(top, fmt.Sprintf("d%03d", d/fanout), fmt.Sprintf("e%03d", d%fanout))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, uint64(d)+1))
	for i := 0; i < perDir && d*perDir+i < files; i++ {
		n := minSz + rng.IntN(maxSz-minSz+1)
		off := rng.IntN(len(pool) - n + 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), pool[off:off+n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeBig(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'x', 'f', 'e', 'r'})
	buf := make([]byte, 1<<20)
	for size > 0 {
		n := min(int64(len(buf)), size)
		rng.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		size -= n
	}
	return f.Close()
}

// scatterBlocks overwrites permille per mille of the whole 4 KiB blocks of
// the file at path, distinct ones chosen at random, with random bytes.
func scatterBlocks(path string, permille int, seed uint64) error {
	const block = 4096
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	blocks := st.Size() / block
	n := blocks * int64(permille) / 1000
	rng := rand.New(rand.NewPCG(seed, 0x5ca7))
	buf := make([]byte, block)
	for _, b := range rng.Perm(int(blocks))[:n] {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, int64(b)*block); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
