package cmd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xfer-io/xfer/exitcode"
	"github.com/xfer-io/xfer/hashtree"
)

func newHashCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "hash FILE... | hash --check SUMS",
		Short: "Print or check BLAKE3 checksums, exactly as b3sum does",
		Long: `Hash prints one line per file: the 64-hex-digit BLAKE3 digest, two spaces and
the name, exactly as b3sum prints it ("-" reads standard input). Names with
a backslash or a newline are escaped the way b3sum escapes them, with a
leading backslash on the line.

With --check, each argument is a file of such lines; every named file is
hashed and reported as OK or FAILED. The exit code is 1 if any file failed
or could not be read.`,
		Example: `  xfer hash big.bin
  xfer hash data/* > SUMS && xfer hash --check SUMS`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.v.GetBool("check") {
				return a.checkSums(cmd, args)
			}
			failed := false
			for _, name := range args {
				d, err := hashNamed(cmd, name)
				if err != nil {
					fmt.Fprintf(a.stderr, "xfer: %s: %v\n", name, unwrapPathErr(err))
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
	c.Flags().BoolP("check", "c", false, "read BLAKE3 sums from the files and check them")
	return c
}

func hashNamed(cmd *cobra.Command, name string) (hashtree.Digest, error) {
	if name == "-" {
		d, _, err := hashtree.HashReader(cmd.Context(), os.Stdin)
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
		return hashtree.Digest{}, fmt.Errorf("is a directory")
	}
	if !st.Mode().IsRegular() {
		d, _, err := hashtree.HashReader(cmd.Context(), f)
		return d, err
	}
	return hashtree.HashFile(cmd.Context(), f, st.Size(), 0)
}

// sumLine formats a line as b3sum does, escaping \ and newline in names.
func sumLine(d hashtree.Digest, name string) string {
	if strings.ContainsAny(name, "\\\n") {
		esc := strings.NewReplacer("\\", "\\\\", "\n", "\\n").Replace(name)
		return "\\" + d.String() + "  " + esc
	}
	return d.String() + "  " + name
}

// parseSumLine reverses sumLine.
func parseSumLine(line string) (hashtree.Digest, string, error) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	if len(line) < 66 || line[64:66] != "  " {
		return hashtree.Digest{}, "", fmt.Errorf("malformed line %q", line)
	}
	d, err := hashtree.ParseDigest(line[:64])
	if err != nil {
		return hashtree.Digest{}, "", err
	}
	name := line[66:]
	if escaped {
		var b strings.Builder
		for i := 0; i < len(name); i++ {
			if name[i] == '\\' && i+1 < len(name) {
				i++
				switch name[i] {
				case 'n':
					b.WriteByte('\n')
				case '\\':
					b.WriteByte('\\')
				default:
					return hashtree.Digest{}, "", fmt.Errorf("bad escape in %q", line)
				}
				continue
			}
			b.WriteByte(name[i])
		}
		name = b.String()
	}
	return d, name, nil
}

func (a *app) checkSums(cmd *cobra.Command, files []string) error {
	bad := 0
	for _, sums := range files {
		var r io.Reader
		if sums == "-" {
			r = os.Stdin
		} else {
			f, err := os.Open(sums)
			if err != nil {
				return exitcode.Usagef("%s: %v", sums, unwrapPathErr(err))
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			if line == "" {
				continue
			}
			n++
			want, name, err := parseSumLine(line)
			if err != nil {
				return exitcode.Usagef("%s line %d: %v", sums, n, err)
			}
			got, err := hashNamed(cmd, name)
			switch {
			case err != nil:
				fmt.Fprintf(a.stdout, "%s: FAILED (%v)\n", name, unwrapPathErr(err))
				bad++
			case got != want:
				fmt.Fprintf(a.stdout, "%s: FAILED\n", name)
				bad++
			default:
				fmt.Fprintf(a.stdout, "%s: OK\n", name)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", sums, err)
		}
	}
	if bad > 0 {
		fmt.Fprintf(a.stderr, "xfer: WARNING: %d computed checksum(s) did NOT match\n", bad)
		return silent(exitcode.Partial)
	}
	return nil
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
