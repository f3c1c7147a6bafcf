package cmd

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/exitcode"
)

// Flag values. Every setting reaches a command through its flag's
// pflag.Value.Set, whether it came from the command line, an XFER_*
// variable or the config file (see settings.go), so a value parses the same
// whatever its source. The types here add the range checks of the flags
// whose Go type allows more than they mean (a negative count of retries, a
// zero timeout); their Set errors are *valueError, written for users.

// valueError is a Set error of the flag types below: what the flag wants,
// without the value (the caller names the value and where it came from).
type valueError struct{ want string }

func (e *valueError) Error() string { return e.want }

func wantf(format string, a ...any) error { return &valueError{fmt.Sprintf(format, a...)} }

// intValue is an int flag limited to [min, max].
type intValue struct {
	v, min, max int
}

func (v *intValue) String() string { return strconv.Itoa(v.v) }
func (v *intValue) Type() string   { return "int" }
func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < int64(v.min) || n > int64(v.max) {
		return v.want()
	}
	v.v = int(n)
	return nil
}

func (v *intValue) want() error {
	switch {
	case v.min == 0 && v.max == math.MaxInt:
		return wantf("want a whole number, 0 or more")
	case v.max == math.MaxInt:
		return wantf("want a whole number, %d or more", v.min)
	}
	return wantf("want a whole number from %d to %d", v.min, v.max)
}

// intFlag declares an int flag whose values must lie in [min, max].
func intFlag(fs *pflag.FlagSet, name string, def, min, max int, usage string) {
	fs.Var(&intValue{v: def, min: min, max: max}, name, usage)
}

// durationValue is a duration flag of at least min (0 or 1ns: "above 0").
type durationValue struct {
	v, min time.Duration
}

// String prints as time.Duration does, except that zero is "0", so that
// help output hides a zero default as it does for pflag's durations.
func (v *durationValue) String() string {
	if v.v == 0 {
		return "0"
	}
	return v.v.String()
}
func (v *durationValue) Type() string { return "duration" }
func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	if d < v.min {
		if v.min > 0 {
			return wantf("want a duration above 0, such as 30s or 5m")
		}
		return wantf("want a duration of 0 or more, such as 30s or 5m")
	}
	v.v = d
	return nil
}

// parseDuration is time.ParseDuration with the one rule for every source:
// a duration needs a unit (30s, 5m, 1h30m); a bare number other than 0 is
// refused rather than read as nanoseconds or seconds.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	d, err := time.ParseDuration(t)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(t, 64); nerr == nil {
		return 0, wantf("want a duration with a unit, such as %ss or %sm (a bare number has no unit)", t, t)
	}
	return 0, wantf("want a duration such as 30s, 5m or 1h30m")
}

// durationFlag declares a duration flag of at least min.
func durationFlag(fs *pflag.FlagSet, name string, def, min time.Duration, usage string) {
	fs.Var(&durationValue{v: def, min: min}, name, usage)
}

// sizeValue is a byte count written as 4096, 64K, 4M, 1GiB ... Empty means
// unset where the flag allows it (optional).
type sizeValue struct {
	s        string
	n        int64
	optional bool
	min, max int64 // max 0: no limit
}

func (v *sizeValue) String() string { return v.s }
func (v *sizeValue) Type() string   { return "size" }
func (v *sizeValue) Set(s string) error {
	if strings.TrimSpace(s) == "" && v.optional {
		v.s, v.n = "", 0
		return nil
	}
	n, err := parseSize(s)
	switch {
	case err != nil:
		return wantf("want a size such as 4096, 64K, 4M or 1G")
	case v.max > 0 && (n < v.min || n > v.max):
		return wantf("want a size from %s to %s", sizeText(v.min), sizeText(v.max))
	case n < v.min:
		return wantf("want a size of at least %s", sizeText(v.min))
	}
	v.s, v.n = strings.TrimSpace(s), n
	return nil
}

// sizeText writes n as parseSize reads it, with the largest exact suffix.
func sizeText(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.suffix)
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// sizeFlag declares a size flag; def "" makes it optional (unset).
func sizeFlag(fs *pflag.FlagSet, name, def string, usage string) {
	sizeRangeFlag(fs, name, def, 0, 0, usage)
}

// sizeRangeFlag declares a size flag whose values lie in [min, max] (max
// 0: at least min).
func sizeRangeFlag(fs *pflag.FlagSet, name, def string, min, max int64, usage string) {
	v := &sizeValue{optional: def == "", min: min, max: max}
	if def != "" {
		if err := v.Set(def); err != nil {
			panic(fmt.Sprintf("flag --%s: bad default %q", name, def))
		}
	}
	fs.Var(v, name, usage)
}

// verbosityValue is -v/--verbose: a count (-v 1, -vv 2) that also takes
// true and false, as the flag did when it was a bool (XFER_VERBOSE=true,
// verbose: true), and a number up to maxVerbosity.
type verbosityValue struct{ n int }

// maxVerbosity is -vv: debug logs.
const maxVerbosity = 2

func (v *verbosityValue) String() string { return strconv.Itoa(v.n) }
func (v *verbosityValue) Type() string   { return "count" }
func (v *verbosityValue) Set(s string) error {
	switch s {
	case "+1":
		v.n = min(v.n+1, maxVerbosity)
		return nil
	case "true":
		v.n = max(v.n, 1)
		return nil
	case "false":
		v.n = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > maxVerbosity {
		return wantf("want true, false or a level from 0 to %d (-v 1, -vv 2)", maxVerbosity)
	}
	v.n = n
	return nil
}

// verbosityFlag declares -v/--verbose on fs.
func verbosityFlag(fs *pflag.FlagSet) {
	fs.VarPF(&verbosityValue{}, "verbose", "v", "log more detail to stderr: -v info (with why the transport was chosen), -vv debug").NoOptDefVal = "+1"
}

// choiceValue is a string flag that takes one of a fixed set of words.
type choiceValue struct {
	v      string
	words  []string
	phrase string // "auto, tcp, tcp-zc, uring or rdma"
}

func (v *choiceValue) String() string { return v.v }
func (v *choiceValue) Type() string   { return "string" }
func (v *choiceValue) Set(s string) error {
	for _, w := range v.words {
		if s == w {
			v.v = s
			return nil
		}
	}
	return wantf("want %s", v.phrase)
}

// choiceFlag declares a flag that takes one of words (the first listed
// words are the default when def is empty).
func choiceFlag(fs *pflag.FlagSet, name, def string, words []string, usage string) {
	phrase := strings.Join(words, ", ")
	if n := len(words); n > 1 {
		phrase = strings.Join(words[:n-1], ", ") + " or " + words[n-1]
	}
	fs.Var(&choiceValue{v: def, words: words, phrase: phrase}, name, usage)
}

// protoWords are the names --proto takes on copy, sync and cas.
var protoWords = []string{"auto", "tcp", "tcp-zc", "uring", "rdma"}

// maxUringEntries is the largest io_uring submission queue the kernel
// allows (IORING_MAX_ENTRIES).
const maxUringEntries = 32768

// invalidValue says, in a user's words, why value is not acceptable for f:
// what the flag wants. It never passes on strconv or time text.
func invalidValue(f *pflag.Flag, value string, cause error) string {
	var ve *valueError
	if errors.As(cause, &ve) {
		return ve.want
	}
	switch f.Value.Type() {
	case "bool":
		return "want true or false"
	case "int", "int8", "int16", "int32", "int64":
		return "want a whole number"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "want a whole number, 0 or more"
	case "float32", "float64":
		return "want a number"
	case "duration":
		if _, err := parseDuration(value); err != nil {
			return err.Error()
		}
		return "want a duration such as 30s, 5m or 1h30m"
	case "stringSlice", "stringArray":
		return "want values separated by commas"
	}
	return cause.Error()
}

// flagValues reads the invoked command's flags by name. After a.init each
// flag holds the value of the command line, XFER_* or the config file, so
// this is where every command reads its settings. An unknown name reads as
// the zero value.
type flagValues struct{ fs *pflag.FlagSet }

func (v flagValues) lookup(name string) *pflag.Flag {
	if v.fs == nil {
		return nil
	}
	return v.fs.Lookup(name)
}

// GetString is the flag's value as text.
func (v flagValues) GetString(name string) string {
	if f := v.lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// GetBool is the value of a bool flag.
func (v flagValues) GetBool(name string) bool {
	b, _ := strconv.ParseBool(v.GetString(name))
	return b
}

// GetInt is the value of an int flag.
func (v flagValues) GetInt(name string) int {
	return flagValue(v, name, func(iv *intValue) int { return iv.v }, func(s string) int {
		n, _ := strconv.Atoi(s)
		return n
	})
}

// GetDuration is the value of a duration flag.
func (v flagValues) GetDuration(name string) time.Duration {
	return flagValue(v, name, func(dv *durationValue) time.Duration { return dv.v }, func(s string) time.Duration {
		d, _ := time.ParseDuration(s)
		return d
	})
}

// GetSize is the value of a size flag (0 when unset).
func (v flagValues) GetSize(name string) int64 {
	return flagValue(v, name, func(sv *sizeValue) int64 { return sv.n }, func(string) int64 { return 0 })
}

// GetStringSlice is the value of a stringSlice or stringArray flag.
func (v flagValues) GetStringSlice(name string) []string {
	return flagValue(v, name, pflag.SliceValue.GetSlice, func(string) []string { return nil })
}

// flagValue reads flag name as a T: through own when its Value is a V (the
// flag types here hold the parsed value), else by parsing its text; the
// zero T when the command has no such flag.
func flagValue[V, T any](v flagValues, name string, own func(V) T, parse func(string) T) T {
	f := v.lookup(name)
	if f == nil {
		var zero T
		return zero
	}
	if x, ok := f.Value.(V); ok {
		return own(x)
	}
	return parse(f.Value.String())
}

// parseBwLimit parses a --bwlimit value: bytes per second of at least 1K
// with an optional K, M or G suffix; "" is 0, no cap.
func parseBwLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	bw, err := parseSize(s)
	if err != nil || bw < 1024 {
		return 0, exitcode.Usagef("--bwlimit %q: want bytes per second of at least 1K, e.g. 100M", s)
	}
	return bw, nil
}
