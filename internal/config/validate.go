package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xfer-io/xfer/internal/location"
)

// Problem is one finding of Validate, at a line of the file (0 when the
// finding has no line).
type Problem struct {
	Line int    `json:"line,omitempty"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// Report is what Validate found. Errors make xfer refuse the file (or
// misread it); warnings are keys xfer ignores.
type Report struct {
	Errors   []Problem `json:"errors"`
	Warnings []Problem `json:"warnings"`
	Remotes  int       `json:"remotes"`
}

// OK reports whether the file has no errors.
func (r *Report) OK() bool { return len(r.Errors) == 0 }

func (r *Report) errorf(line int, format string, a ...any) {
	r.Errors = append(r.Errors, Problem{line, fmt.Sprintf(format, a...)})
}

func (r *Report) warnf(line int, format string, a ...any) {
	r.Warnings = append(r.Warnings, Problem{line, fmt.Sprintf(format, a...)})
}

// yamlLineRE picks the line out of a YAML syntax error.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// remoteKeys are the keys of one remote's entry that
// location.RemotesFromConfig reads; true for those naming a file.
var remoteKeys = map[string]bool{
	"url": false, "address": false, "agents": false, "token_file": true,
	"tls_ca": true, "tls_cert": true, "tls_key": true, "tls_server_name": false, "tls_data": false,
	"etcd": false, "cluster": false, "etcd_cacert": true, "etcd_cert": true, "etcd_key": true,
}

// Key is a top-level key the file may set besides remotes: the flag of that
// name, which the file gives a default.
type Key struct {
	// Parse checks one value as the flag parses it on the command line and
	// in XFER_* variables; its error says what the flag wants. Nil accepts
	// any value.
	Parse func(value string) error
	// List reports whether the flag takes several values, so that a YAML
	// list is allowed (each item is one value).
	List bool
}

// Validate checks the text of a config file. keys maps every top-level key
// xfer understands besides `remotes` (the flag names, in lower case) to how
// the flag parses its value, so that a value the flag would refuse on the
// command line is refused here too. A key that is no flag is an error, with
// the nearest flag name as a hint. Keys are compared without regard to
// letter case.
func Validate(data []byte, keys map[string]Key) Report {
	var rep Report
	doc, err := parse(data)
	if err != nil {
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			rep.errorf(line, "%s", m[2])
		} else {
			rep.errorf(0, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return rep
	}
	top := doc.Content[0]
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			rep.errorf(k.Line, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		name := strings.ToLower(k.Value)
		if first, dup := seen[name]; dup {
			rep.errorf(k.Line, "key %q repeats the key on line %d (keys are not case-sensitive); only one of them would be used", k.Value, first)
			continue
		}
		seen[name] = k.Line
		if name == RemotesKey {
			validateRemotes(&rep, v)
			continue
		}
		key, known := keys[name]
		if !known {
			rep.errorf(k.Line, "unknown key %q: it is not a flag of any xfer command%s", k.Value, suggest(name, keys))
			continue
		}
		checkValue(&rep, k.Value, v, key)
	}
	return rep
}

// suggest is the did-you-mean hint for an unknown key: the flag name it
// would be with dashes for underscores, else the nearest flag name by edit
// distance, if one is close.
func suggest(name string, keys map[string]Key) string {
	if alt := strings.ReplaceAll(name, "_", "-"); alt != name {
		if _, ok := keys[alt]; ok {
			return fmt.Sprintf(" (did you mean %q? flag names keep their dashes)", alt)
		}
	}
	names := make([]string, 0, len(keys)+1)
	for k := range keys {
		names = append(names, k)
	}
	if best := Nearest(name, append(names, RemotesKey)); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// Nearest is the name closest to name by edit distance, if it is within
// one edit (two for names of five or more letters); "" if none is.
func Nearest(name string, names []string) string {
	allowed := 1
	if len(name) >= 5 {
		allowed = 2
	}
	sort.Strings(names)
	best, bestD := "", allowed+1
	for _, k := range names {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func validateRemotes(rep *Report, v *yaml.Node) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return
	}
	if v.Kind != yaml.MappingNode {
		rep.errorf(v.Line, "%s must be a mapping of remote names to their settings, not %s", RemotesKey, kindName(v))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := v.Content[i], v.Content[i+1]
		name := k.Value
		if first, dup := seen[strings.ToLower(name)]; dup {
			rep.errorf(k.Line, "remote %q repeats the remote on line %d (remote names are not case-sensitive)", name, first)
			continue
		}
		seen[strings.ToLower(name)] = k.Line
		var raw any
		if err := e.Decode(&raw); err != nil {
			rep.errorf(e.Line, "remote %q: %v", name, err)
			continue
		}
		if _, err := location.RemotesFromConfig(map[string]any{name: raw}); err != nil {
			rep.errorf(k.Line, "%v", err)
			continue
		}
		rep.Remotes++
		for j := 0; j+1 < len(e.Content); j += 2 {
			ek, ev := e.Content[j], e.Content[j+1]
			isFile, known := remoteKeys[ek.Value]
			if !known {
				hint := ""
				names := make([]string, 0, len(remoteKeys))
				for k := range remoteKeys {
					names = append(names, k)
				}
				if best := Nearest(strings.ToLower(ek.Value), names); best != "" {
					hint = fmt.Sprintf("did you mean %q? ", best)
				}
				rep.errorf(ek.Line, "remote %q: unknown key %q (%swant url, address, agents or etcd and cluster, token_file, tls_ca, tls_cert, tls_key, tls_server_name, tls_data, etcd_cacert, etcd_cert, etcd_key)", name, ek.Value, hint)
				continue
			}
			if isFile && ev.Value != "" {
				checkFile(rep, name, ek.Value, ev)
			}
		}
	}
}

// checkFile warns about a file a remote names that xfer may not find.
func checkFile(rep *Report, name, key string, v *yaml.Node) {
	p := v.Value
	if !filepath.IsAbs(p) {
		rep.warnf(v.Line, "remote %q: %s %q is relative, so it is looked up in the directory xfer runs in; give an absolute path", name, key, p)
		return
	}
	if _, err := os.Stat(p); err != nil {
		rep.warnf(v.Line, "remote %q: %s: %v", name, key, err)
	}
}

// checkValue reports a value the flag would refuse.
func checkValue(rep *Report, key string, n *yaml.Node, k Key) {
	values, list, problem := nodeValues(n)
	switch {
	case problem != "":
		rep.errorf(n.Line, "key %q: %s", key, problem)
		return
	case list && !k.List:
		rep.errorf(n.Line, "key %q: want a single value, not a list", key)
		return
	}
	if k.Parse == nil {
		return
	}
	for _, v := range values {
		if err := k.Parse(v); err != nil {
			rep.errorf(n.Line, "key %q: %q: %v", key, v, err)
			return
		}
	}
}

// nodeValues turns a top-level key's YAML value into what the command line
// would give the flag: a scalar's text as written, or each item of a list.
// problem says why the value cannot be a flag's.
func nodeValues(n *yaml.Node) (values []string, list bool, problem string) {
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil, false, "has no value"
	case n.Kind == yaml.ScalarNode:
		return []string{n.Value}, false, ""
	case n.Kind == yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return nil, true, "want a list of single values, not a list holding " + kindName(c)
			}
			values = append(values, c.Value)
		}
		return values, true, ""
	}
	return nil, false, "want a single value or a list, not " + kindName(n)
}

// Setting is one top-level key of the file other than remotes: the
// default the file gives the flag of that name.
type Setting struct {
	Key    string   // in lower case, as flags are named
	Line   int      // where it is in the file
	Values []string // the value as the command line would give it; several for a list
}

// Settings returns the file's top-level keys other than remotes, in file
// order. Values that no flag could take (see Validate) are left out.
func (f *File) Settings() []Setting {
	var out []Setting
	top := f.top()
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Kind != yaml.ScalarNode || strings.EqualFold(k.Value, RemotesKey) {
			continue
		}
		values, _, problem := nodeValues(v)
		if problem != "" {
			continue
		}
		out = append(out, Setting{Key: strings.ToLower(k.Value), Line: v.Line, Values: values})
	}
	return out
}
