package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cast"
	"go.yaml.in/yaml/v3"

	"github.com/xfer-io/xfer/location"
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
}

// Validate checks the text of a config file. keys maps every top-level key
// xfer understands besides `remotes` (the flag names, in lower case) to the
// flag's type as pflag names it ("int", "bool", "duration", "string",
// "stringSlice", ...), so values that viper would silently read as zero are
// reported. Keys are compared without regard to letter case, as viper does.
func Validate(data []byte, keys map[string]string) Report {
	var rep Report
	doc, err := parse(data)
	if err != nil {
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			rep.errorf(line, "%s", m[2])
		} else {
			rep.errorf(0, "%v", err)
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
		typ, known := keys[name]
		if !known {
			hint := ""
			if alt := strings.ReplaceAll(name, "_", "-"); alt != name {
				if _, ok := keys[alt]; ok {
					hint = fmt.Sprintf(" (did you mean %q? flag names keep their dashes)", alt)
				}
			}
			rep.warnf(k.Line, "unknown key %q is ignored: it is not a flag of any xfer command%s", k.Value, hint)
			continue
		}
		checkValue(&rep, k.Value, v, typ)
	}
	return rep
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
				rep.warnf(ek.Line, "remote %q: unknown key %q is ignored (want url, address or agents, token_file, tls_ca, tls_cert, tls_key, tls_server_name, tls_data)", name, ek.Value)
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

// checkValue reports a value viper could not convert to the flag's type:
// viper would read it as the zero value without a word.
func checkValue(rep *Report, key string, n *yaml.Node, typ string) {
	var v any
	if err := n.Decode(&v); err != nil {
		rep.errorf(n.Line, "key %q: %v", key, err)
		return
	}
	bad := func(want string) {
		rep.errorf(n.Line, "key %q: want %s, got %s", key, want, kindName(n))
	}
	scalar := n.Kind == yaml.ScalarNode
	var err error
	switch typ {
	case "int", "int8", "int16", "int32", "int64":
		_, err = cast.ToInt64E(v)
		if err != nil || !scalar {
			bad("a whole number")
		}
	case "uint", "uint8", "uint16", "uint32", "uint64":
		_, err = cast.ToUint64E(v)
		if err != nil || !scalar {
			bad("a whole number, not negative")
		}
	case "float32", "float64":
		if _, err = cast.ToFloat64E(v); err != nil || !scalar {
			bad("a number")
		}
	case "bool":
		if _, err = cast.ToBoolE(v); err != nil || !scalar {
			bad("true or false")
		}
	case "duration":
		if !scalar {
			bad("a duration such as 30s or 5m")
			return
		}
		if _, err = cast.ToDurationE(v); err != nil {
			bad("a duration such as 30s or 5m")
			return
		}
		if n.Tag == "!!int" || n.Tag == "!!float" {
			rep.errorf(n.Line, "key %q: %s has no unit and would mean nanoseconds; write it with a unit such as %ss", key, n.Value, n.Value)
		}
	case "string":
		if !scalar {
			bad("a single value")
		}
	case "stringSlice", "stringArray":
		ok := scalar
		if n.Kind == yaml.SequenceNode {
			ok = true
			for _, c := range n.Content {
				ok = ok && c.Kind == yaml.ScalarNode
			}
		}
		if !ok {
			bad("a list of values or one comma-separated value")
		}
	}
}
