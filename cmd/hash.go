package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/hashtree"
)

func newHashCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "hash [FILE]... | hash --check [SUMS]...",
		Short: "Print or check BLAKE3 checksums, exactly as b3sum does",
		Long: `Hash prints one line per file: the 64-hex-digit BLAKE3 digest, two spaces and
the name, exactly as b3sum prints it. With no FILE, or when FILE is -, it
reads standard input (and prints the name -). Names with a backslash or a
newline are escaped the way b3sum escapes them: the line starts with a
backslash, and the name has \\ for a backslash and \n for a newline. Names
that are not valid UTF-8 are printed with U+FFFD in place of each invalid
sequence, as b3sum prints them.

With --check, each argument (standard input when none, or -) is a file of
such lines, escaped lines included; every named file is hashed and reported
as "NAME: OK" or "NAME: FAILED", with NAME as it appears in the line. With
-q (--quiet) only failures are printed. Malformed lines are reported on
stderr and count as failures. The exit code is 1 if any file failed or
could not be read, 2 if a SUMS file cannot be opened.

A regular file is hashed on --threads cores at once (by default as many as
the machine has, as b3sum does), through BLAKE3's tree: pieces of the file
hashed side by side, the digest of the whole from theirs, the same digest
b3sum prints. Standard input and other streams are hashed as they arrive.`,
		Example: `  xfer hash big.bin
  xfer hash data/* > SUMS && xfer hash --check SUMS
  tar c data | xfer hash
  xfer hash -c -q SUMS       # print only the files that do not match
  xfer hash --threads 1 big.bin   # on one core, as b3sum --num-threads 1`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"-"}
			}
			threads := a.v.GetInt("threads")
			if threads < 0 {
				return exitcode.Usagef("--threads %d: want a number of threads, 0 or more (0: one per CPU)", threads)
			}
			if threads == 0 {
				threads = runtime.NumCPU()
			}
			if a.v.GetBool("check") {
				return a.checkSums(cmd.Context(), args, a.v.GetBool("quiet"), threads)
			}
			failed := false
			for _, name := range args {
				d, err := hashNamed(cmd.Context(), name, threads)
				if err != nil {
					if stopped(cmd.Context()) {
						return interrupted(cmd.Context())
					}
					fmt.Fprintf(a.stderr, "xfer: %s: %s\n", sumName(name), hashErrText(err))
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, sumLine(d, name))
			}
			if failed {
				return silent(exitcode.Partial)
			}
			return nil
		},
	}
	c.Flags().BoolP("check", "c", false, "read BLAKE3 sums from the files and check them (with -q: print only failures)")
	c.Flags().Int("threads", 0, "hash each file on this many threads (0: one per CPU, as b3sum --num-threads)")
	return c
}

// stopped reports whether the command's context ended (a signal).
func stopped(ctx context.Context) bool { return ctx.Err() != nil }

// hashNamed hashes the file name (standard input for -), a regular file on
// threads goroutines.
func hashNamed(ctx context.Context, name string, threads int) (hashtree.Digest, error) {
	if name == "-" {
		d, _, err := hashtree.HashReader(ctx, os.Stdin)
		return d, err
	}
	f, err := os.Open(name)
	if err != nil {
		return hashtree.Digest{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return hashtree.Digest{}, err
	}
	if st.IsDir() {
		return hashtree.Digest{}, syscall.EISDIR
	}
	if !st.Mode().IsRegular() {
		d, _, err := hashtree.HashReader(ctx, f)
		return d, err
	}
	return hashtree.HashFile(ctx, f, st.Size(), threads)
}

// hashErrText is the reason a file could not be hashed, as a user reads
// it: the system's word for it ("no such file or directory", "is a
// directory", "input/output error"), without Go's wrapping.
func hashErrText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return "read failed"
}

// lossy returns name as b3sum prints a path that is not valid UTF-8 (Rust's
// to_string_lossy): each maximal invalid subsequence (in the sense of
// Unicode's "substitution of maximal subparts") becomes one U+FFFD.
func lossy(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		if r != utf8.RuneError || n > 1 {
			b.WriteString(name[i : i+n])
			i += n
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += maximalSubpart(name[i:])
	}
	return b.String()
}

// maximalSubpart is the length of the invalid sequence at the start of s
// that stands for one U+FFFD: the lead byte and the continuation bytes
// that could still have begun a well-formed sequence (Unicode Table 3-7).
func maximalSubpart(s string) int {
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch c := s[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		lo, need = 0xA0, 2
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		hi, need = 0x9F, 2
	case c == 0xF0:
		lo, need = 0x90, 3
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		hi, need = 0x8F, 3
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if s[n] < lo || s[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}

// sumEscaper escapes a name as b3sum does.
var sumEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n")

// needsEscape reports whether b3sum escapes name.
func needsEscape(name string) bool { return strings.ContainsAny(name, "\\\n") }

// sumName is name as b3sum prints it in messages and check results:
// made valid UTF-8, escaped, with a leading backslash when escaped.
func sumName(name string) string {
	name = lossy(name)
	if needsEscape(name) {
		return "\\" + sumEscaper.Replace(name)
	}
	return name
}

// sumLine formats a line as b3sum does: invalid UTF-8 made lossy, a name
// with a backslash or newline escaped and the line marked with a leading
// backslash.
func sumLine(d hashtree.Digest, name string) string {
	name = lossy(name)
	if needsEscape(name) {
		return "\\" + d.String() + "  " + sumEscaper.Replace(name)
	}
	return d.String() + "  " + name
}

// sumEntry is one parsed line of a sums file.
type sumEntry struct {
	digest hashtree.Digest
	name   string // the file to hash
	shown  string // the name as the line has it, with its leading backslash if escaped
}

// parseSumLine reverses sumLine, accepting exactly what b3sum --check
// accepts; line has no line terminator.
func parseSumLine(line string) (sumEntry, error) {
	if line == "" {
		return sumEntry{}, errors.New("empty line")
	}
	escaped := strings.HasPrefix(line, "\\")
	rest := line
	if escaped {
		rest = line[1:]
	}
	if len(rest) < 66 {
		return sumEntry{}, errors.New("line too short for a digest and a name")
	}
	var d hashtree.Digest
	for i := 0; i < 64; i++ {
		if c := rest[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return sumEntry{}, errors.New("invalid hex digest (want 64 lowercase hex digits)")
		}
	}
	d, err := hashtree.ParseDigest(rest[:64])
	if err != nil {
		return sumEntry{}, errors.New("invalid hex digest (want 64 lowercase hex digits)")
	}
	if rest[64:66] != "  " {
		return sumEntry{}, errors.New("want two spaces between the digest and the name")
	}
	shown := rest[66:]
	name := shown
	if escaped {
		var b strings.Builder
		for i := 0; i < len(shown); i++ {
			if shown[i] != '\\' {
				b.WriteByte(shown[i])
				continue
			}
			i++
			switch {
			case i < len(shown) && shown[i] == 'n':
				b.WriteByte('\n')
			case i < len(shown) && shown[i] == '\\':
				b.WriteByte('\\')
			default:
				return sumEntry{}, errors.New("invalid backslash escape (only \\\\ and \\n are escapes)")
			}
		}
		name = b.String()
		shown = "\\" + shown
	}
	if strings.ContainsRune(name, utf8.RuneError) {
		return sumEntry{}, errors.New("unicode replacement character in path (the name was not valid UTF-8 when it was hashed)")
	}
	return sumEntry{digest: d, name: name, shown: shown}, nil
}

// maxSumLine bounds one line of a sums file.
const maxSumLine = 1 << 20

func (a *app) checkSums(ctx context.Context, files []string, quiet bool, threads int) error {
	bad, broken := 0, false
	for _, sums := range files {
		var r io.Reader = os.Stdin
		if sums != "-" {
			f, err := os.Open(sums)
			if err != nil {
				// A SUMS argument that cannot be read is a bad argument
				// (exit 2), as a missing SRC of a copy is.
				return exitcode.Usagef("%s: %s", sumName(sums), hashErrText(err))
			}
			defer f.Close()
			r = f
		}
		br := bufio.NewReaderSize(r, 64<<10)
		for n := 1; ; n++ {
			line, err := readSumLine(br)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fmt.Fprintf(a.stderr, "xfer: %s line %d: %v\n", sumName(sums), n, err)
				broken = true
				break
			}
			if !utf8.ValidString(line) {
				// b3sum stops reading such a file too.
				fmt.Fprintf(a.stderr, "xfer: %s line %d: not valid UTF-8 (lines of a sums file are UTF-8)\n", sumName(sums), n)
				broken = true
				break
			}
			ent, err := parseSumLine(line)
			if err != nil {
				fmt.Fprintf(a.stderr, "xfer: %s line %d: %v\n", sumName(sums), n, err)
				broken = true
				continue
			}
			got, err := hashNamed(ctx, ent.name, threads)
			switch {
			case err != nil && stopped(ctx):
				return interrupted(ctx)
			case err != nil:
				fmt.Fprintf(a.stdout, "%s: FAILED (%s)\n", ent.shown, hashErrText(err))
				bad++
			case got != ent.digest:
				fmt.Fprintf(a.stdout, "%s: FAILED\n", ent.shown)
				bad++
			case !quiet:
				fmt.Fprintf(a.stdout, "%s: OK\n", ent.shown)
			}
		}
	}
	if bad > 0 {
		fmt.Fprintf(a.stderr, "xfer: WARNING: %d computed checksum(s) did NOT match\n", bad)
	}
	if bad > 0 || broken {
		return silent(exitcode.Partial)
	}
	return nil
}

// readSumLine reads one line without its "\n" (a "\r" stays part of the
// name, as with b3sum); io.EOF at the end. A final line without "\n"
// counts.
func readSumLine(br *bufio.Reader) (string, error) {
	var buf bytes.Buffer
	for {
		frag, err := br.ReadSlice('\n')
		buf.Write(frag)
		if buf.Len() > maxSumLine {
			return "", fmt.Errorf("longer than %d bytes", maxSumLine)
		}
		switch {
		case err == nil:
			return strings.TrimSuffix(buf.String(), "\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && buf.Len() > 0:
			return buf.String(), nil
		case errors.Is(err, io.EOF):
			return "", io.EOF
		default:
			return "", errors.New(hashErrText(err))
		}
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
