// Package config reads, edits and checks xfer's YAML config file without
// losing what it does not know about. Edits go through the YAML node tree,
// so comments, key order and the keys of other commands survive a rewrite,
// and every write replaces the file atomically (a temporary file in the same
// directory, flushed, then renamed over the old one) with mode 0600, creating
// missing directories with mode 0700.
//
// The command layer (cmd/config.go, cmd/remote.go) turns these calls into
// `xfer config show|validate|edit` and `xfer remote add|ls|rm`; every other
// command loads the file with Load, refuses it unless Validate finds no
// error, and gives each Setting to the flag of that name, so what validates
// here is exactly what the commands accept.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xfer-io/xfer/internal/location"
)

// RemotesKey is the top-level key holding the named remotes.
const RemotesKey = "remotes"

// ErrRemoteExists is returned by AddRemote when a remote of that name (in
// any letter case) is already defined and replacing was not asked for.
var ErrRemoteExists = errors.New("remote already exists")

// File is one config file held in memory for editing.
type File struct {
	path    string
	doc     *yaml.Node // a DocumentNode whose only child is the top-level mapping
	existed bool
}

// Load reads the config file at path. A file that does not exist yet loads
// as an empty one, which Save creates.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{path: path, doc: emptyDoc()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config file %s: %w", path, err)
	}
	doc, err := parse(data)
	if err != nil {
		return nil, syntaxError(path, err)
	}
	return &File{path: path, doc: doc, existed: true}, nil
}

// syntaxError words a YAML parse error as FILE:LINE: message, without the
// parser's "yaml:" prefix.
func syntaxError(path string, err error) error {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("config file %s:%s: %s", path, m[1], m[2])
	}
	return fmt.Errorf("config file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
}

// parse turns the file's bytes into a document whose top level is a
// mapping; an empty file (or one holding only comments) is an empty mapping.
func parse(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d := emptyDoc()
		// Keep a comment-only file's comments.
		d.HeadComment = doc.HeadComment
		d.FootComment = doc.FootComment
		return d, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		doc.Content[0] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: top.HeadComment}
		return &doc, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the top level must be a mapping of keys (like `remotes:` and flag names), not %s", top.Line, kindName(top))
	}
	return &doc, nil
}

func emptyDoc() *yaml.Node {
	return &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Exists reports whether the file existed when it was loaded.
func (f *File) Exists() bool { return f.existed }

func (f *File) top() *yaml.Node { return f.doc.Content[0] }

// lookup finds key in mapping m, ignoring letter case as viper does. It
// returns the index of the key node, or -1.
func lookup(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if strings.EqualFold(m.Content[i].Value, key) {
			return i
		}
	}
	return -1
}

// remotesNode returns the mapping under `remotes`, creating it when create
// is set; nil when there is none.
func (f *File) remotesNode(create bool) (*yaml.Node, error) {
	top := f.top()
	i := lookup(top, RemotesKey)
	if i < 0 {
		if !create {
			return nil, nil
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		top.Content = append(top.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: RemotesKey}, m)
		return m, nil
	}
	v := top.Content[i+1]
	switch {
	case v.Kind == yaml.MappingNode:
		return v, nil
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		if !create {
			return nil, nil
		}
		*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", LineComment: v.LineComment}
		return v, nil
	default:
		return nil, fmt.Errorf("config file %s: line %d: %s must be a mapping of remote names, not %s", f.path, v.Line, RemotesKey, kindName(v))
	}
}

// Remotes returns the remotes the file defines, sorted by name, with names
// spelled as in the file. It fails on entries xfer would refuse to use.
func (f *File) Remotes() ([]location.Remote, error) {
	m, err := f.remotesNode(false)
	if err != nil || m == nil {
		return nil, err
	}
	var raw map[string]any
	if err := m.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", f.path, err)
	}
	rs, err := location.RemotesFromConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", f.path, err)
	}
	out := make([]location.Remote, 0, len(rs))
	for _, r := range rs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}

// AddRemote defines the remote r: `url: xfer://HOST:PORT` for one agent,
// `agents: [...]` for several, then `token_file` and the `tls_*` keys that
// are set. An existing remote
// of the same name (in any letter case) is replaced only if replace is set;
// otherwise the error wraps ErrRemoteExists.
func (f *File) AddRemote(r location.Remote, replace bool) error {
	if !location.ValidName(r.Name) {
		return fmt.Errorf("remote name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", r.Name)
	}
	if len(r.Agents) == 0 && r.SSH == nil && r.Etcd == nil {
		return fmt.Errorf("remote %q: needs an address (xfer://HOST:PORT or --agents HOST:PORT,...)", r.Name)
	}
	for _, a := range r.Agents {
		if err := location.ValidAddr(a); err != nil {
			return fmt.Errorf("remote %q: %w", r.Name, err)
		}
	}
	m, err := f.remotesNode(true)
	if err != nil {
		return err
	}
	entry := remoteNode(r)
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: r.Name}
	if i := lookup(m, r.Name); i >= 0 {
		if !replace {
			return fmt.Errorf("remote %q in %s: %w", m.Content[i].Value, f.path, ErrRemoteExists)
		}
		key.HeadComment = m.Content[i].HeadComment
		m.Content[i], m.Content[i+1] = key, entry
		return nil
	}
	m.Content = append(m.Content, key, entry)
	return nil
}

func remoteNode(r location.Remote) *yaml.Node {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	switch {
	case r.SSH != nil:
		n.Content = append(n.Content, str("url"), str(r.SSH.URL()))
	case r.Etcd != nil:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, u := range r.Etcd.Endpoints {
			seq.Content = append(seq.Content, str(u))
		}
		n.Content = append(n.Content, str("etcd"), seq, str("cluster"), str(r.Etcd.Cluster))
		for _, kv := range []struct{ k, v string }{{"etcd_cacert", r.Etcd.CACert}, {"etcd_cert", r.Etcd.Cert}, {"etcd_key", r.Etcd.Key}} {
			if kv.v != "" {
				n.Content = append(n.Content, str(kv.k), str(kv.v))
			}
		}
	case len(r.Agents) == 1:
		n.Content = append(n.Content, str("url"), str("xfer://"+r.Agents[0]))
	default:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, a := range r.Agents {
			seq.Content = append(seq.Content, str(a))
		}
		n.Content = append(n.Content, str("agents"), seq)
	}
	for _, kv := range []struct{ k, v string }{
		{"token_file", r.TokenFile}, {"tls_ca", r.TLSCA}, {"tls_cert", r.TLSCert},
		{"tls_key", r.TLSKey}, {"tls_server_name", r.TLSServerName},
	} {
		if kv.v != "" {
			n.Content = append(n.Content, str(kv.k), str(kv.v))
		}
	}
	if r.TLSData != nil {
		n.Content = append(n.Content, str("tls_data"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(*r.TLSData)})
	}
	return n
}

// RemoveRemote deletes the remote called name (in any letter case) and
// returns the name as the file spelled it, or "" if there was none.
func (f *File) RemoveRemote(name string) (string, error) {
	m, err := f.remotesNode(false)
	if err != nil || m == nil {
		return "", err
	}
	i := lookup(m, name)
	if i < 0 {
		return "", nil
	}
	spelled := m.Content[i].Value
	m.Content = append(m.Content[:i], m.Content[i+2:]...)
	return spelled, nil
}

// Bytes is the file's YAML as Save would write it.
func (f *File) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f.doc); err != nil {
		return nil, fmt.Errorf("encoding config file %s: %w", f.path, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding config file %s: %w", f.path, err)
	}
	return buf.Bytes(), nil
}

// Save writes the file atomically (see WriteFile).
func (f *File) Save() error {
	data, err := f.Bytes()
	if err != nil {
		return err
	}
	if err := WriteFile(f.path, data); err != nil {
		return err
	}
	f.existed = true
	return nil
}

// WriteFile replaces the file at path with data atomically: readers see the
// old content or the new, never a mix, and a crash leaves one of the two.
// The file gets mode 0600 (it may name token files); missing directories
// are created with mode 0700. If path is a symbolic link, the file it points
// to is replaced and the link kept.
func WriteFile(path string, data []byte) error {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing config file %s: %w", path, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("writing config file %s: %w", name, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing config file %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("flushing config file %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config file %s: %w", name, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("replacing config file %s: %w", path, err)
	}
	ok = true
	// Make the rename itself durable; failing to is not worth an error.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}
