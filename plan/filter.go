package plan

// Filters: include/exclude rules with rsync's pattern semantics, plus size
// and age limits. docs/filters.md is the user-facing description; the
// comments here say how each piece maps onto rsync (exclude.c, wildmatch.c).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xfer-io/xfer/internal/progress"
)

// Rule is one include or exclude rule, or a clear.
type Rule struct {
	Include bool   `json:"include,omitempty"` // "+": a match includes the entry; otherwise it excludes it
	Pattern string `json:"pattern,omitempty"` // rsync-style pattern (see docs/filters.md)
	// Clear ("!" in a filter file) drops every rule before it, including
	// earlier --include/--exclude flags, as in rsync. Include and Pattern
	// are ignored.
	Clear bool `json:"clear,omitempty"`
}

// String renders r in filter-file syntax ("+ PATTERN", "- PATTERN", "!").
func (r Rule) String() string {
	switch {
	case r.Clear:
		return "!"
	case r.Include:
		return "+ " + r.Pattern
	}
	return "- " + r.Pattern
}

// ParseRule parses one rule: "+ PATTERN", "- PATTERN", "include PATTERN",
// "exclude PATTERN" (a single space or "_" separates the rule from its
// pattern, which is taken verbatim, trailing spaces included, as in rsync),
// or "!" / "clear", which clears the rules before it. The pattern is
// validated. rsync's rule modifiers ("-/", "+!", ...) and other rule kinds
// (merge, hide, protect, ...) are not supported.
func ParseRule(s string) (Rule, error) {
	var r Rule
	var rest string
	switch {
	case strings.TrimRight(s, " \t") == "!" || strings.TrimRight(s, " \t") == "clear":
		return Rule{Clear: true}, nil
	case strings.HasPrefix(s, "+"), strings.HasPrefix(s, "-"):
		r.Include, rest = s[0] == '+', s[1:]
	case strings.HasPrefix(s, "include"), strings.HasPrefix(s, "exclude"):
		r.Include, rest = s[0] == 'i', s[len("include"):]
	case strings.HasPrefix(s, "!"), strings.HasPrefix(s, "clear"):
		return Rule{}, fmt.Errorf("rule %q: a clear (\"!\") takes no pattern", s)
	default:
		return Rule{}, fmt.Errorf("rule %q: want \"+ PATTERN\", \"- PATTERN\", \"include PATTERN\", \"exclude PATTERN\" or \"!\"", s)
	}
	switch {
	case rest == "":
		return Rule{}, fmt.Errorf("rule %q: missing pattern", s)
	case rest[0] == ',':
		return Rule{}, fmt.Errorf("rule %q: rule modifiers are not supported", s)
	case rest[0] != ' ' && rest[0] != '_':
		return Rule{}, fmt.Errorf("rule %q: want a space between the rule and its pattern", s)
	}
	r.Pattern = rest[1:]
	if _, err := compileRule(r); err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	return r, nil
}

// ParseFilterFile reads rules, one per line (see ParseRule), from r. Empty
// and all-blank lines and lines starting with "#" or ";" are ignored; a
// line "!" yields a Rule with Clear set. CRLF line ends are accepted.
// Errors name the file and line: "filter file NAME line N: ...".
func ParseFilterFile(r io.Reader, name string) ([]Rule, error) {
	return parseLines(r, "filter file", name, func(line string) (Rule, bool, error) {
		rule, err := ParseRule(line)
		return rule, true, err
	})
}

// ParsePatternFile reads --exclude-from (include false) or --include-from
// patterns, one per line, as rsync does: empty lines and lines starting
// with "#" or ";" are ignored, a line starting with "+ " or "- " is a rule
// of that kind whatever the flag, and any other line is a pattern taken
// verbatim. Errors name the file and line.
func ParsePatternFile(r io.Reader, name string, include bool) ([]Rule, error) {
	return parseLines(r, "pattern file", name, func(line string) (Rule, bool, error) {
		rule := Rule{Include: include, Pattern: line}
		if strings.HasPrefix(line, "+ ") || strings.HasPrefix(line, "- ") {
			rule = Rule{Include: line[0] == '+', Pattern: line[2:]}
		}
		if _, err := compileRule(rule); err != nil {
			return Rule{}, false, fmt.Errorf("%q: %w", line, err)
		}
		return rule, true, nil
	})
}

// ParseFilesFrom reads a --files-from list: one path per line relative to
// the source (a leading "/" or "./" is dropped, as rsync does, and the
// path is cleaned); empty lines and lines starting with "#" or ";" are
// ignored. A path with ".." that leaves the source is refused. The
// result is never nil (an empty list selects nothing).
func ParseFilesFrom(r io.Reader, name string) ([]string, error) {
	return parseLines(r, "--files-from", name, func(line string) (string, bool, error) {
		p := path.Clean("/" + line)[1:]
		if p == "" {
			return "", false, nil // the source itself is always there
		}
		if err := validListed(p); err != nil || strings.Contains(line, "/../") || strings.HasPrefix(line, "../") || line == ".." {
			return "", false, fmt.Errorf("%q leaves the source", line)
		}
		return p, true, nil
	})
}

// parseLines reads a list file: parse gets every line (numbered from 1,
// without its LF or CRLF end) that is neither blank nor a comment ("#",
// ";") and gives an item, or none (false). Errors say what the file is,
// its name and the line. The result is never nil.
func parseLines[T any](r io.Reader, what, name string, parse func(line string) (T, bool, error)) ([]T, error) {
	out := []T{}
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s %s line %d: %w", what, name, n, err)
		}
		eof := err != nil
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if strings.TrimSpace(line) != "" && line[0] != '#' && line[0] != ';' {
			v, ok, perr := parse(line)
			if perr != nil {
				return nil, fmt.Errorf("%s %s line %d: %w", what, name, n, perr)
			}
			if ok {
				out = append(out, v)
			}
		}
		if eof {
			return out, nil
		}
	}
}

// validListed checks one FilesFrom path: relative, clean, within the
// source.
func validListed(p string) error {
	if p == "" || p[0] == '/' || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("files-from path %q: want a clean path relative to the source", p)
	}
	return nil
}

// pathProblem is the system's reason of a failed open, without the
// operation and path Go puts in front of it.
func pathProblem(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// FilterOptions configure NewFilter. They travel as JSON (e.g. in a job
// run by a server); Now is not sent, and missing sizes decode as -1.
type FilterOptions struct {
	// Rules in order; the first whose pattern matches decides. A Rule with
	// Clear set drops the rules before it.
	Rules []Rule `json:"rules,omitempty"`
	// MinSize and MaxSize bound the size of regular files, inclusive; -1
	// means no bound. (The zero value of MaxSize admits only empty files.)
	MinSize int64 `json:"min_size"`
	MaxSize int64 `json:"max_size"`
	// MinAge and MaxAge bound the age (Now minus mtime) of regular files,
	// inclusive; 0 means no bound.
	MinAge time.Duration `json:"min_age,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
	// Now is the reference time for ages; the zero value means the time
	// NewFilter is called.
	Now time.Time `json:"-"`
	// FilesFrom, when not nil, is the list of --files-from: only these
	// paths (relative to the source, cleaned, see ParseFilesFrom) and the
	// directories above them are considered, as with rsync --files-from
	// (a listed directory is not recursed into). The rules apply on top.
	FilesFrom []string `json:"files_from,omitempty"`
}

// UnmarshalJSON decodes o, taking missing sizes as -1 (no bound) rather
// than 0 (empty files only).
func (o *FilterOptions) UnmarshalJSON(b []byte) error {
	type plain FilterOptions
	p := plain{MinSize: -1, MaxSize: -1}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*o = FilterOptions(p)
	return nil
}

// Filter decides which entries a transfer considers. It is immutable and
// safe for concurrent use. A nil *Filter includes everything.
type Filter struct {
	rules            []pattern
	files            map[string]bool // FilesFrom; nil: no list
	dirs             map[string]bool // the directories above FilesFrom's paths
	minSize, maxSize int64
	minAge, maxAge   time.Duration
	now              time.Time
}

// NewFilter validates o and builds its filter.
func NewFilter(o FilterOptions) (*Filter, error) {
	f := &Filter{minSize: o.MinSize, maxSize: o.MaxSize, minAge: o.MinAge, maxAge: o.MaxAge, now: o.Now}
	for i, r := range o.Rules {
		if r.Clear {
			f.rules = f.rules[:0]
			continue
		}
		p, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("filter rule %d (%s): %w", i+1, r, err)
		}
		f.rules = append(f.rules, p)
	}
	if o.FilesFrom != nil {
		f.files, f.dirs = make(map[string]bool, len(o.FilesFrom)), map[string]bool{}
		for _, p := range o.FilesFrom {
			if err := validListed(p); err != nil {
				return nil, err
			}
			f.files[p] = true
			for d := Dir(p); d != ""; d = Dir(d) {
				f.dirs[d] = true
			}
		}
	}
	switch {
	case o.MinSize < -1:
		return nil, fmt.Errorf("minimum size %d: want -1 (none) or at least 0", o.MinSize)
	case o.MaxSize < -1:
		return nil, fmt.Errorf("maximum size %d: want -1 (none) or at least 0", o.MaxSize)
	case o.MinSize >= 0 && o.MaxSize >= 0 && o.MinSize > o.MaxSize:
		return nil, fmt.Errorf("minimum size %d exceeds maximum size %d: no file could pass", o.MinSize, o.MaxSize)
	case o.MinAge < 0:
		return nil, fmt.Errorf("minimum age %v: want 0 (none) or more", o.MinAge)
	case o.MaxAge < 0:
		return nil, fmt.Errorf("maximum age %v: want 0 (none) or more", o.MaxAge)
	case o.MinAge > 0 && o.MaxAge > 0 && o.MinAge > o.MaxAge:
		return nil, fmt.Errorf("minimum age %v exceeds maximum age %v: no file could pass", o.MinAge, o.MaxAge)
	}
	if f.now.IsZero() {
		f.now = time.Now()
	}
	return f, nil
}

// Empty reports whether f includes every entry (no rules, no limits).
func (f *Filter) Empty() bool {
	return f == nil || (!f.selects() && !f.hasLimits())
}

// selects reports whether f has rules or a --files-from list: what
// decides which entries exist for the transfer, as opposed to limits.
func (f *Filter) selects() bool {
	return len(f.rules) > 0 || f.files != nil
}

func (f *Filter) hasLimits() bool {
	return f.minSize >= 0 || f.maxSize >= 0 || f.minAge > 0 || f.maxAge > 0
}

// Match is the whole decision for one entry: false if a rule excludes the
// entry or any directory above it, or if it is a regular file outside the
// size or age limits.
func (f *Filter) Match(e Entry) (include bool) {
	return f == nil || (f.Lists(e) && f.limitReason(e) == "")
}

// Lists reports whether Lister passes e: no rule excludes it or a
// directory above it (size and age limits aside). A nil f passes
// everything.
func (f *Filter) Lists(e Entry) bool {
	if f == nil {
		return true
	}
	for i := 0; i < len(e.Path); i++ {
		if e.Path[i] == '/' && f.ruleExcludes(e.Path[:i], true) {
			return false
		}
	}
	return !f.ruleExcludes(e.Path, e.Type == TypeDir)
}

// ruleExcludes applies the rules to one path alone: the first rule that
// matches decides; no match includes.
func (f *Filter) ruleExcludes(path string, isDir bool) bool {
	if f.files != nil && !f.files[path] && !(isDir && f.dirs[path]) {
		return true
	}
	for i := range f.rules {
		if f.rules[i].matches(path, isDir) {
			return !f.rules[i].include
		}
	}
	return false
}

// limitReason says which limit a regular file fails ("min-size",
// "max-size", "min-age", "max-age"), or "" if it passes. Other types pass.
func (f *Filter) limitReason(e Entry) string {
	if e.Type != TypeFile {
		return ""
	}
	switch {
	case f.minSize >= 0 && e.Size < f.minSize:
		return "min-size"
	case f.maxSize >= 0 && e.Size > f.maxSize:
		return "max-size"
	}
	if f.minAge > 0 || f.maxAge > 0 {
		age := f.now.Sub(time.Unix(0, e.MtimeNs))
		switch {
		case f.minAge > 0 && age < f.minAge:
			return "min-age"
		case f.maxAge > 0 && age > f.maxAge:
			return "max-age"
		}
	}
	return ""
}

// DirSkipper is implemented by listers that can leave out the contents of
// the directory Next returned last, so that an excluded directory is never
// read. Filter's listers use it when the wrapped lister has it.
type DirSkipper interface {
	// SkipDir makes Next continue after the contents of the directory it
	// returned last; it does nothing if that entry was not a directory.
	SkipDir()
}

// Lister wraps l, dropping the entries the rules exclude and everything
// beneath an excluded directory (calling l.SkipDir, when l is a
// DirSkipper, so the directory is not descended into). Size and age limits
// are not applied: they concern what is transferred, not what exists.
// Copy and sync should use Filter.Diff, which wraps both listings and also
// keeps excluded destination entries inside directories it deletes or
// replaces.
func (f *Filter) Lister(l Lister) Lister {
	if f == nil || !f.selects() {
		return l
	}
	return &filteredLister{f: f, l: l}
}

type filteredLister struct {
	f    *Filter
	l    Lister
	skip string // an excluded directory whose contents are still being dropped
	// observe, when set, sees every entry not beneath an excluded
	// directory, excluded or not, and the end of the listing (a zero
	// Entry); Filter.Diff uses it on the destination side.
	observe func(e Entry, excluded bool) error
}

func (fl *filteredLister) Next(ctx context.Context) (Entry, error) {
	for {
		e, err := fl.l.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) && fl.observe != nil {
				if oerr := fl.observe(Entry{}, false); oerr != nil {
					return Entry{}, oerr
				}
			}
			return e, err
		}
		// In Compare order a directory's contents come right after it.
		if fl.skip != "" && isBeneath(e.Path, fl.skip) {
			continue
		}
		fl.skip = ""
		excluded := fl.f.ruleExcludes(e.Path, e.Type == TypeDir)
		if fl.observe != nil {
			if err := fl.observe(e, excluded); err != nil {
				return Entry{}, err
			}
		}
		if !excluded {
			return e, nil
		}
		if e.Type == TypeDir {
			fl.skip = e.Path
			if s, ok := fl.l.(DirSkipper); ok {
				s.SkipDir()
			}
		}
	}
}

// isBeneath reports whether p lies strictly beneath directory dir.
func isBeneath(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && strings.HasPrefix(p, dir)
}

// Diff is plan.Diff with f applied, the way rsync applies its filters:
//
//   - Both listings are filtered by the rules (see Lister), so an excluded
//     entry is neither transferred nor compared nor deleted.
//   - Where Diff would delete a destination directory or replace it by a
//     file or symlink, and that directory holds excluded entries, they are
//     kept: a delete becomes one delete per included entry beneath it
//     (deepest first), and the directory itself is deleted only if nothing
//     excluded remains in it; a replacement becomes an OpSkip with Reason
//     "protected".
//   - A source file outside the size or age limits is not transferred: its
//     OpPut or OpSetAttrs becomes an OpSkip whose Reason names the limit
//     ("min-size", "max-size", "min-age", "max-age"). As with rsync's
//     --max-size, such a file still counts as present for deletion, so its
//     destination copy is kept; destination-only files are deleted whatever
//     their size or age.
//   - With opt.DeleteExcluded (sync --delete-excluded) the destination
//     listing is not filtered: what the rules exclude there is deleted
//     like any other extra entry, as rsync --delete-excluded does.
//
// A nil or empty f runs plain Diff. Memory stays independent of the size
// of the trees.
func (f *Filter) Diff(ctx context.Context, src, dst Lister, opt DiffOptions, emit func(Op) error) error {
	if f.Empty() {
		return Diff(ctx, src, dst, opt, emit)
	}
	d := &filteredDiff{f: f, emit: emit, protect: f.selects() && !opt.DeleteExcluded}
	if f.selects() {
		src = f.Lister(src)
		if d.protect {
			dst = &filteredLister{f: f, l: dst, observe: d.observe}
		}
	}
	if err := Diff(ctx, src, dst, opt, d.op); err != nil {
		return err
	}
	return d.release()
}

// filteredDiff holds back an op that removes a destination directory
// wholesale until the destination listing has gone past the directory's
// contents, which Diff skips but the destination lister still sees.
type filteredDiff struct {
	f    *Filter
	emit func(Op) error
	// protect: the destination listing is filtered, so excluded entries
	// beneath a directory that goes are kept (not --delete-excluded).
	protect bool
	held    *Op // deletes or replaces the destination directory held.Dst or held.Src
	dir     string
	kept    bool // something excluded lies beneath dir
	// open are the included directories beneath a held delete whose
	// contents are still being listed, outermost first.
	open []pendingDir
}

type pendingDir struct {
	e    Entry
	kept bool
}

func (d *filteredDiff) op(op Op) error {
	if err := d.release(); err != nil {
		return err
	}
	if (op.Kind == OpPut || op.Kind == OpSetAttrs) && op.Src.Type == TypeFile {
		if why := d.f.limitReason(op.Src); why != "" {
			op = Op{Kind: OpSkip, Src: op.Src, Dst: op.Dst, Reason: why}
		}
	}
	if d.protect {
		switch {
		case op.Kind == OpDelete && op.Src.Type == TypeDir:
			d.held, d.dir = &op, op.Src.Path
			return nil
		case op.Kind != OpSkip && op.Dst != nil && op.Dst.Type == TypeDir && op.Src.Type != TypeDir:
			d.held, d.dir = &op, op.Dst.Path
			return nil
		}
	}
	return d.emit(op)
}

// observe follows the destination listing while an op is held; e is zero
// at the end of the listing.
func (d *filteredDiff) observe(e Entry, excluded bool) error {
	if d.held == nil {
		return nil
	}
	if e.Path == "" || !isBeneath(e.Path, d.dir) {
		return d.release()
	}
	if err := d.closeDirs(e.Path); err != nil {
		return err
	}
	if excluded {
		d.kept = true
		for i := range d.open {
			d.open[i].kept = true
		}
		return nil
	}
	if d.held.Kind != OpDelete {
		return nil
	}
	if e.Type == TypeDir {
		d.open = append(d.open, pendingDir{e: e})
		return nil
	}
	return d.emit(Op{Kind: OpDelete, Src: e, Reason: "extra"})
}

// closeDirs finishes the open directories that p is not beneath.
func (d *filteredDiff) closeDirs(p string) error {
	for len(d.open) > 0 {
		top := d.open[len(d.open)-1]
		if p != "" && isBeneath(p, top.e.Path) {
			return nil
		}
		d.open = d.open[:len(d.open)-1]
		if !top.kept {
			if err := d.emit(Op{Kind: OpDelete, Src: top.e, Reason: "extra"}); err != nil {
				return err
			}
		}
	}
	return nil
}

// release emits the held op, if any, now that its directory is complete.
func (d *filteredDiff) release() error {
	if d.held == nil {
		return nil
	}
	if err := d.closeDirs(""); err != nil {
		return err
	}
	op, kept := *d.held, d.kept
	d.held, d.dir, d.kept = nil, "", false
	switch {
	case !kept:
		return d.emit(op)
	case op.Kind == OpDelete:
		return nil // what is left holds excluded entries
	}
	return d.emit(Op{Kind: OpSkip, Src: op.Src, Dst: op.Dst, Reason: "protected"})
}

// RuleArgs collects --include, --exclude and --filter-from arguments in
// the order they appear on the command line, which is the order their
// rules apply in. Include, Exclude and FilterFrom return flag values for
// the standard flag package and for pflag/cobra.
type RuleArgs struct {
	args []ruleArg
}

type ruleArg struct {
	kind  ruleArgKind
	value string
}

type ruleArgKind uint8

const (
	argInclude ruleArgKind = iota + 1
	argExclude
	argFilterFrom
	argExcludeFrom
	argIncludeFrom
)

// RuleFlag is a flag value that adds to a RuleArgs each time it is set.
type RuleFlag struct {
	args *RuleArgs
	kind ruleArgKind
}

// Include returns the value for --include PATTERN.
func (a *RuleArgs) Include() RuleFlag { return RuleFlag{a, argInclude} }

// Exclude returns the value for --exclude PATTERN.
func (a *RuleArgs) Exclude() RuleFlag { return RuleFlag{a, argExclude} }

// FilterFrom returns the value for --filter-from FILE.
func (a *RuleArgs) FilterFrom() RuleFlag { return RuleFlag{a, argFilterFrom} }

// ExcludeFrom returns the value for --exclude-from FILE: one exclude
// pattern per line (see ParsePatternFile).
func (a *RuleArgs) ExcludeFrom() RuleFlag { return RuleFlag{a, argExcludeFrom} }

// IncludeFrom returns the value for --include-from FILE: one include
// pattern per line.
func (a *RuleArgs) IncludeFrom() RuleFlag { return RuleFlag{a, argIncludeFrom} }

// fromFile reports whether the flag names a file rather than a pattern.
func (k ruleArgKind) fromFile() bool {
	return k == argFilterFrom || k == argExcludeFrom || k == argIncludeFrom
}

// Args returns the RuleArgs the flag adds to.
func (v RuleFlag) Args() *RuleArgs { return v.args }

// String is empty: the flags have no default.
func (v RuleFlag) String() string { return "" }

// Type names the argument in help output.
func (v RuleFlag) Type() string {
	if v.kind.fromFile() {
		return "file"
	}
	return "pattern"
}

// Set records one argument; a pattern is validated at once.
func (v RuleFlag) Set(s string) error {
	if !v.kind.fromFile() {
		if _, err := compileRule(Rule{Include: v.kind == argInclude, Pattern: s}); err != nil {
			return err
		}
	} else if s == "" {
		return errors.New("empty file name")
	}
	v.args.args = append(v.args.args, ruleArg{v.kind, s})
	return nil
}

// Empty reports whether no argument was given.
func (a *RuleArgs) Empty() bool { return a == nil || len(a.args) == 0 }

// Rules returns the rules in command-line order, reading each filter file
// with open (os.Open when nil; map "-" to standard input there if wanted).
func (a *RuleArgs) Rules(open func(name string) (io.ReadCloser, error)) ([]Rule, error) {
	if a == nil {
		return nil, nil
	}
	if open == nil {
		open = func(name string) (io.ReadCloser, error) { return os.Open(name) }
	}
	var rules []Rule
	for _, arg := range a.args {
		if !arg.kind.fromFile() {
			rules = append(rules, Rule{Include: arg.kind == argInclude, Pattern: arg.value})
			continue
		}
		rc, err := open(arg.value)
		if err != nil {
			return nil, fmt.Errorf("filter file %s: %w", arg.value, pathProblem(err))
		}
		var rs []Rule
		if arg.kind == argFilterFrom {
			rs, err = ParseFilterFile(rc, arg.value)
		} else {
			rs, err = ParsePatternFile(rc, arg.value, arg.kind == argIncludeFrom)
		}
		rc.Close()
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs...)
	}
	return rules, nil
}

// ParseAge parses a duration for --min-age and --max-age: Go syntax
// ("90s", "1h30m") extended with "d" (24h) and "w" (7d), e.g. "7d",
// "2w3d12h". A bare number is an error, except "0".
func ParseAge(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("age %q: want a duration such as 90s, 36h, 7d or 2w3d", s)
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return bad()
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		if num == "" || unit == "" {
			return bad()
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			v, err := strconv.ParseFloat(num, 64)
			per := 24 * time.Hour
			if unit == "w" {
				per *= 7
			}
			if err != nil || v*float64(per) >= math.MaxInt64 {
				return bad()
			}
			d = time.Duration(v * float64(per))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return bad()
			}
		}
		if total > math.MaxInt64-d {
			return bad()
		}
		total += d
		rest = rest[j:]
	}
	return total, nil
}

// pattern is a compiled rule. The fields mirror rsync's rule flags.
type pattern struct {
	include  bool
	pat      string // without the anchoring "/" and the directory-only "/"
	dirOnly  bool   // trailing "/": directories only
	anchored bool   // leading "/": matched against the whole path
	wild     bool   // contains * ? or [: wildcard match with \ escapes; else literal
	base     bool   // no "/" and no "**": matched against the last component
	// where selects the part of the path to match when not anchored and not
	// base: n > 0 the last n components (pattern has n-1 slashes, no "**"),
	// -1 the path and every suffix after a "/" (pattern has "**" but does
	// not start with it), 0 the whole path.
	where int
	// wild2Prefix: the pattern starts with "**", so "/" is put in front
	// of the path and "**/foo" matches "foo" at the top too.
	wild2Prefix bool
	// wild3Suffix: the pattern ends with "***", so "/" is appended to a
	// directory's path and "dir/***" matches "dir" itself.
	wild3Suffix bool
}

func compileRule(r Rule) (pattern, error) {
	p := r.Pattern
	c := pattern{include: r.Include}
	if p == "" {
		return c, errors.New("empty pattern")
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		p, c.dirOnly = p[:len(p)-1], true
	}
	slashes := strings.Count(p, "/")
	c.wild = strings.ContainsAny(p, "*?[")
	wild2 := false
	if c.wild {
		if err := validateWild(p); err != nil {
			return c, err
		}
		if i := strings.Index(p, "**"); i >= 0 {
			wild2, c.wild2Prefix, c.wild3Suffix = true, i == 0, strings.HasSuffix(p, "***")
		}
	}
	if p[0] == '/' {
		p, c.anchored = p[1:], true
	}
	if p == "" {
		return c, fmt.Errorf("pattern %q matches nothing", r.Pattern)
	}
	c.pat = p
	switch {
	case slashes == 0 && !wild2:
		c.base = true
	case c.anchored || c.wild2Prefix:
		c.where = 0
	case !wild2:
		c.where = slashes + 1
	default:
		c.where = -1
	}
	return c, nil
}

func (c *pattern) matches(path string, isDir bool) bool {
	if c.dirOnly && !isDir {
		return false
	}
	text := path
	switch {
	case c.base:
		text = Base(path)
	case c.where > 0:
		var ok bool
		if text, ok = lastComponents(path, c.where); !ok {
			return false
		}
	}
	if !c.wild {
		return text == c.pat
	}
	if c.wild2Prefix {
		text = "/" + text
	}
	if c.wild3Suffix && isDir {
		text += "/"
	}
	m := wildmatch(c.pat, text)
	if m != wmTrue && c.where < 0 && m != wmAbortAll {
		for i := 0; i < len(text); i++ {
			if text[i] != '/' {
				continue
			}
			if m = wildmatch(c.pat, text[i+1:]); m != wmFalse && m != wmAbortToStarStar {
				break
			}
		}
	}
	return m == wmTrue
}

// lastComponents returns the last n slash-separated components of p, or
// false if p has fewer.
func lastComponents(p string, n int) (string, bool) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if n--; n == 0 {
				return p[i+1:], true
			}
		}
	}
	return p, n == 1
}

// Results of wildmatch, as in rsync's wildmatch.c: the aborts tell callers
// trying later starting points that none can match.
const (
	wmFalse = iota
	wmTrue
	wmAbortAll
	wmAbortToStarStar
)

// wildmatch matches text against pattern p the way rsync's dowild does:
// "*" matches within a component, "**" across components, "?" one
// character but "/", "[...]" one character but "/" from a class, and "\"
// quotes the next character. Unlike rsync, "?" and classes match one UTF-8
// character rather than one byte. p must have passed validateWild.
func wildmatch(p, t string) int {
	for len(p) > 0 {
		pc := p[0]
		if t == "" && pc != '*' {
			return wmAbortAll
		}
		switch pc {
		case '\\':
			if t[0] != p[1] {
				return wmFalse
			}
			p, t = p[2:], t[1:]
		case '?':
			r, n := utf8.DecodeRuneInString(t)
			if r == '/' {
				return wmFalse
			}
			p, t = p[1:], t[n:]
		case '*':
			p = p[1:]
			special := strings.HasPrefix(p, "*")
			p = strings.TrimLeft(p, "*")
			if p == "" {
				if !special && strings.IndexByte(t, '/') >= 0 {
					return wmFalse
				}
				return wmTrue
			}
			for t != "" {
				if m := wildmatch(p, t); m != wmFalse {
					if !special || m != wmAbortToStarStar {
						return m
					}
				} else if !special && t[0] == '/' {
					return wmAbortToStarStar
				}
				_, n := utf8.DecodeRuneInString(t)
				t = t[n:]
			}
			return wmAbortAll
		case '[':
			r, n := utf8.DecodeRuneInString(t)
			ok, rest, err := matchClass(p[1:], r)
			if err != nil {
				return wmAbortAll
			}
			if !ok || r == '/' {
				return wmFalse
			}
			p, t = rest, t[n:]
		default:
			if t[0] != pc {
				return wmFalse
			}
			p, t = p[1:], t[1:]
		}
	}
	if t != "" {
		return wmFalse
	}
	return wmTrue
}

// matchClass matches r against the class that starts after a "[" in p and
// returns the pattern after the closing "]". Syntax as in rsync: "!" or
// "^" negates; "]" first is literal; "a-z" ranges; "\" quotes;
// "[:alpha:]" and the other POSIX classes (ASCII only).
func matchClass(p string, r rune) (matched bool, rest string, err error) {
	negate := false
	if p != "" && (p[0] == '!' || p[0] == '^') {
		negate, p = true, p[1:]
	}
	prev := rune(-1) // the last single character, which may start a range
	for first := true; ; first = false {
		if p == "" {
			return false, "", errUnterminatedClass
		}
		c, n := utf8.DecodeRuneInString(p)
		switch {
		case c == ']' && !first:
			return matched != negate, p[1:], nil
		case c == '\\':
			if len(p) < 2 {
				return false, "", errUnterminatedClass
			}
			c, n = utf8.DecodeRuneInString(p[1:])
			matched = matched || r == c
			prev, p = c, p[1+n:]
		case c == '-' && prev >= 0 && len(p) > 1 && p[1] != ']':
			hi, hn := utf8.DecodeRuneInString(p[1:])
			skip := 1
			if hi == '\\' {
				if len(p) < 3 {
					return false, "", errUnterminatedClass
				}
				hi, hn = utf8.DecodeRuneInString(p[2:])
				skip = 2
			}
			matched = matched || (r >= prev && r <= hi)
			prev, p = -1, p[skip+hn:]
		case c == '[' && len(p) > 1 && p[1] == ':':
			end := strings.IndexByte(p[2:], ']')
			if end < 0 {
				return false, "", errUnterminatedClass
			}
			name := p[2 : 2+end]
			if !strings.HasSuffix(name, ":") {
				// Not "[:name:]": a literal "[".
				matched = matched || r == '['
				prev, p = '[', p[1:]
				continue
			}
			in, ok := posixClass(name[:len(name)-1], r)
			if !ok {
				return false, "", fmt.Errorf("unknown character class [:%s]", name)
			}
			matched = matched || in
			prev, p = -1, p[2+end+1:]
		default:
			matched = matched || r == c
			prev, p = c, p[n:]
		}
	}
}

var errUnterminatedClass = errors.New(`unterminated character class: a "[" without "]" (write \[ for a literal one)`)

// posixClass reports whether r is in the named POSIX class (C locale) and
// whether the name is known.
func posixClass(name string, r rune) (in, known bool) {
	lower := r >= 'a' && r <= 'z'
	upper := r >= 'A' && r <= 'Z'
	digit := r >= '0' && r <= '9'
	graph := r > ' ' && r < 0x7f
	switch name {
	case "alnum":
		return lower || upper || digit, true
	case "alpha":
		return lower || upper, true
	case "blank":
		return r == ' ' || r == '\t', true
	case "cntrl":
		return r >= 0 && r < ' ' || r == 0x7f, true
	case "digit":
		return digit, true
	case "graph":
		return graph, true
	case "lower":
		return lower, true
	case "print":
		return graph || r == ' ', true
	case "punct":
		return graph && !lower && !upper && !digit, true
	case "space":
		return r == ' ' || r >= '\t' && r <= '\r', true
	case "upper":
		return upper, true
	case "xdigit":
		return digit || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F', true
	}
	return false, false
}

// validateWild rejects wildcard patterns rsync would silently never
// match: a trailing "\", an unterminated class, an unknown [:class:].
func validateWild(p string) error {
	for i := 0; i < len(p); {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				return errors.New("pattern ends in a lone \"\\\"")
			}
			i += 2
		case '[':
			_, rest, err := matchClass(p[i+1:], 0)
			if err != nil {
				return err
			}
			i = len(p) - len(rest)
		default:
			i++
		}
	}
	return nil
}

// MarshalJSON writes the rule with its pattern kept exactly: a pattern
// that is not valid UTF-8 (it may name such files) goes as an escaped
// "pattern" plus its bytes in "pattern_b64" (see progress.SplitName).
func (r Rule) MarshalJSON() ([]byte, error) { return ruleNames.Marshal(ruleJSON(r)) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Rule) UnmarshalJSON(b []byte) error { return ruleNames.Unmarshal(b, (*ruleJSON)(r)) }

// ruleJSON is Rule without its methods, for its codec ruleNames: its
// pattern is a name.
type ruleJSON Rule

var ruleNames = progress.NewNameCodec[ruleJSON]("Pattern")
