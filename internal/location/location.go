// Package location parses the places xfer commands name: a local path,
// xfer://HOST:PORT/PATH for a served peer, ssh://[USER@]HOST[:PORT]/PATH
// for a host reached through ssh, or NAME:PATH for a remote named in the
// config file.
package location

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Remote is a named remote from the config file.
type Remote struct {
	Name          string
	Agents        []string // host:port of each agent; one for a plain server
	TokenFile     string
	TLSCA         string // CA file: connect with TLS and verify against it
	TLSCert       string // client certificate (mutual TLS)
	TLSKey        string
	TLSServerName string
	TLSData       *bool // nil: the command-line default
	// SSH, when set, makes this a host reached through ssh (Agents is
	// empty).
	SSH *SSH
	// Etcd, when set, makes this a cluster whose agents are the live
	// members registered in etcd (Agents is empty).
	Etcd *Etcd
}

// Etcd names a cluster whose membership is kept in etcd.
type Etcd struct {
	Endpoints []string // client URLs
	Cluster   string
	CACert    string // TLS: CA of etcd's certificate
	Cert, Key string // TLS client certificate
}

// SSH is the far side of an ssh:// location: the account, and the
// directory `xfer serve --stdio` serves there (Root).
type SSH struct {
	User string
	Host string
	Port string
	// Root is an absolute path, "~" (the remote user's home directory) or
	// "~/DIR"; paths of the location are beneath it.
	Root string
}

// Location is a parsed command-line location.
type Location struct {
	Raw    string
	Remote *Remote // nil for a local path
	Path   string  // local path, or slash path beneath the served root ("" for the root)
}

// IsLocal reports whether the location is a local path.
func (l Location) IsLocal() bool { return l.Remote == nil }

// Addr is the first agent's address.
func (l Location) Addr() string {
	if l.Remote == nil || len(l.Remote.Agents) == 0 {
		return ""
	}
	return l.Remote.Agents[0]
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidName reports whether s can name a remote.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Parse parses s against the configured remotes. Remote names are
// case-insensitive: the config file's keys are (viper folds them).
func Parse(s string, remotes map[string]Remote) (Location, error) {
	if s == "" {
		return Location{}, fmt.Errorf("empty location")
	}
	if strings.ContainsRune(s, 0) {
		return Location{}, fmt.Errorf("location %q contains a NUL byte", s)
	}
	if strings.HasPrefix(s, "ssh://") {
		t, err := ParseSSHURL(s)
		if err != nil {
			return Location{}, err
		}
		// The far side serves the top of the path (the home directory or
		// /), so that a file or a directory still to be made can be named.
		p := ""
		if rest, ok := strings.CutPrefix(t.Root, "~"); ok {
			t.Root, p = "~", strings.TrimPrefix(rest, "/")
		} else {
			t.Root, p = "/", strings.TrimPrefix(t.Root, "/")
		}
		return Location{Raw: s, Remote: &Remote{SSH: &t}, Path: p}, nil
	}
	if strings.HasPrefix(s, "xfer://") {
		addr, p, err := ParseURL(s)
		if err != nil {
			return Location{}, err
		}
		return Location{Raw: s, Remote: &Remote{Agents: []string{addr}}, Path: p}, nil
	}
	if i := strings.IndexByte(s, ':'); i > 0 && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, ".") {
		name := s[:i]
		if ValidName(name) && !strings.Contains(name, "/") {
			r, ok := remotes[name]
			if !ok {
				r, ok = remotes[strings.ToLower(name)]
			}
			if !ok {
				return Location{}, fmt.Errorf("unknown remote %q in %q (define it in the config file, or write ./%s for a local path)", name, s, s)
			}
			p, err := RemotePath(s[i+1:])
			if err != nil {
				return Location{}, fmt.Errorf("location %q: %w", s, err)
			}
			if len(r.Agents) == 0 && r.SSH == nil && r.Etcd == nil {
				return Location{}, fmt.Errorf("remote %q has no address in the config file", name)
			}
			rr := r
			rr.Name = name
			return Location{Raw: s, Remote: &rr, Path: p}, nil
		}
	}
	return Location{Raw: s, Path: s}, nil
}

// ParseURL splits xfer://HOST:PORT/PATH into the address and the path
// beneath the served root.
func ParseURL(s string) (addr, p string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("location %q: want xfer://HOST:PORT/PATH", s)
	}
	if u.Scheme != "xfer" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("location %q: want xfer://HOST:PORT/PATH", s)
	}
	if err := ValidAddr(u.Host); err != nil {
		return "", "", fmt.Errorf("location %q: %w", s, err)
	}
	p, err = RemotePath(u.Path)
	if err != nil {
		return "", "", fmt.Errorf("location %q: %w", s, err)
	}
	return u.Host, p, nil
}

// ParseSSHURL parses ssh://[USER@]HOST[:PORT][/PATH] as git does: /PATH
// is absolute, /~ and /~/PATH are in the remote user's home directory, and
// no path at all is the home directory (rsync's HOST:). Root holds the
// whole directory.
func ParseSSHURL(s string) (SSH, error) {
	want := fmt.Errorf("location %q: want ssh://[USER@]HOST[:PORT]/PATH (/~/PATH for the home directory)", s)
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return SSH{}, want
	}
	t := SSH{Host: u.Hostname(), Port: u.Port()}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return SSH{}, fmt.Errorf("location %q: no password in the URL; ssh asks for one, or use a key or an agent", s)
		}
		t.User = u.User.Username()
		if t.User == "" || strings.HasPrefix(t.User, "-") {
			return SSH{}, want
		}
	}
	if strings.HasPrefix(t.Host, "-") {
		return SSH{}, fmt.Errorf("location %q: a host name cannot start with '-'", s)
	}
	if t.Port != "" {
		if n, err := strconv.Atoi(t.Port); err != nil || n < 1 || n > 65535 {
			return SSH{}, fmt.Errorf("location %q: the port must be a number from 1 to 65535", s)
		}
	}
	p := u.Path
	switch {
	case p == "" || p == "/" || p == "/~" || p == "/~/":
		t.Root = "~"
	case strings.HasPrefix(p, "/~/"):
		rp, err := RemotePath(p[3:])
		if err != nil {
			return SSH{}, fmt.Errorf("location %q: %w", s, err)
		}
		t.Root = strings.TrimSuffix("~/"+rp, "/")
	case strings.HasPrefix(p, "/~"):
		return SSH{}, fmt.Errorf("location %q: ~USER paths are not supported; write /~/PATH (your home) or an absolute path", s)
	default:
		rp, err := RemotePath(p)
		if err != nil {
			return SSH{}, fmt.Errorf("location %q: %w", s, err)
		}
		t.Root = "/" + rp
	}
	return t, nil
}

// ParseSSHShort parses rsync's [USER@]HOST[:PATH]: PATH is in the remote
// user's home directory unless it is absolute, and no PATH is the home
// directory itself.
func ParseSSHShort(s string) (SSH, error) {
	user, rest := "", s
	if at := strings.IndexByte(s, '@'); at >= 0 && !strings.ContainsAny(s[:at], ":/") {
		user, rest = s[:at+1], s[at+1:]
	}
	hostPart, p, _ := strings.Cut(rest, ":")
	if strings.HasPrefix(rest, "[") { // [IPv6]:PATH
		end := strings.Index(rest, "]")
		if end < 0 || end+1 < len(rest) && rest[end+1] != ':' {
			return SSH{}, fmt.Errorf("%q: want [USER@]HOST[:PATH]", s)
		}
		hostPart, p = rest[:end+1], strings.TrimPrefix(rest[end+1:], ":")
	}
	if strings.Contains(hostPart, "/") || hostPart == "" {
		return SSH{}, fmt.Errorf("%q: want [USER@]HOST[:PATH]", s)
	}
	hostPart = user + hostPart
	switch {
	case p == "" || p == "~":
		p = "/~"
	case strings.HasPrefix(p, "~/"):
		p = "/" + p
	case !strings.HasPrefix(p, "/"):
		p = "/~/" + p
	}
	return ParseSSHURL("ssh://" + hostPart + p)
}

// URL is the ssh:// form of t.
func (t SSH) URL() string {
	s := "ssh://"
	if t.User != "" {
		s += url.PathEscape(t.User) + "@"
	}
	if t.Port != "" {
		s += net.JoinHostPort(t.Host, t.Port)
	} else if strings.Contains(t.Host, ":") {
		s += "[" + t.Host + "]"
	} else {
		s += t.Host
	}
	return s + "/" + strings.TrimPrefix(t.Root, "/")
}

// ValidAddr checks a host:port address.
func ValidAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: want HOST:PORT", a)
	}
	if host == "" || port == "" {
		return fmt.Errorf("address %q: want HOST:PORT", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q: the port must be a number from 1 to 65535", a)
	}
	return nil
}

// RemotePath normalises a path beneath a served root: leading slashes are
// dropped (the path is relative to the root either way) and ".." that
// would climb above the root is refused.
func RemotePath(p string) (string, error) {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q climbs out of the served root", p)
		}
	}
	c := path.Clean("/" + p)
	c = strings.TrimPrefix(c, "/")
	return c, nil
}

// RemotesFromConfig converts the `remotes` section of the config file.
// Each entry has `url: xfer://HOST:PORT` or `address: HOST:PORT`, or
// `agents: [HOST:PORT, ...]`, and optionally `token_file`.
func RemotesFromConfig(m map[string]any) (map[string]Remote, error) {
	out := map[string]Remote{}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		if !ValidName(name) {
			return nil, fmt.Errorf("remote name %q: use letters, digits, '.', '_' and '-'", name)
		}
		v, ok := m[name].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("remote %q: want a mapping with url, address or agents", name)
		}
		r := Remote{Name: name}
		if u, ok := v["url"].(string); ok && strings.HasPrefix(u, "ssh://") {
			t, err := ParseSSHURL(u)
			if err != nil {
				return nil, fmt.Errorf("remote %q: %w", name, err)
			}
			r.SSH = &t
		} else if ok && u != "" {
			addr, _, err := ParseURL(u)
			if err != nil {
				return nil, fmt.Errorf("remote %q: %w", name, err)
			}
			r.Agents = append(r.Agents, addr)
		}
		if a, ok := v["address"].(string); ok && a != "" {
			if err := ValidAddr(a); err != nil {
				return nil, fmt.Errorf("remote %q: %w", name, err)
			}
			r.Agents = append(r.Agents, a)
		}
		if list, ok := v["agents"].([]any); ok {
			for _, x := range list {
				a, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("remote %q: agents must be HOST:PORT strings", name)
				}
				if err := ValidAddr(a); err != nil {
					return nil, fmt.Errorf("remote %q: %w", name, err)
				}
				r.Agents = append(r.Agents, a)
			}
		}
		if list, ok := v["etcd"].([]any); ok {
			e := &Etcd{}
			for _, x := range list {
				u, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("remote %q: etcd must be a list of URLs", name)
				}
				e.Endpoints = append(e.Endpoints, u)
			}
			e.Cluster, _ = v["cluster"].(string)
			if !ValidName(e.Cluster) || len(e.Endpoints) == 0 {
				return nil, fmt.Errorf("remote %q: etcd goes with cluster: NAME", name)
			}
			e.CACert, _ = v["etcd_cacert"].(string)
			e.Cert, _ = v["etcd_cert"].(string)
			e.Key, _ = v["etcd_key"].(string)
			if len(r.Agents) > 0 || r.SSH != nil {
				return nil, fmt.Errorf("remote %q: etcd goes without url, address or agents", name)
			}
			r.Etcd = e
		}
		if len(r.Agents) == 0 && r.SSH == nil && r.Etcd == nil {
			return nil, fmt.Errorf("remote %q: needs url, address, agents or etcd", name)
		}
		if r.SSH != nil && len(r.Agents) > 0 {
			return nil, fmt.Errorf("remote %q: an ssh:// url goes without address or agents", name)
		}
		for key, dst := range map[string]*string{"token_file": &r.TokenFile, "tls_ca": &r.TLSCA,
			"tls_cert": &r.TLSCert, "tls_key": &r.TLSKey, "tls_server_name": &r.TLSServerName} {
			if x, ok := v[key]; ok {
				s, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("remote %q: %s must be a string", name, key)
				}
				*dst = s
			}
		}
		if x, ok := v["tls_data"]; ok {
			b, ok := x.(bool)
			if !ok {
				return nil, fmt.Errorf("remote %q: tls_data must be true or false", name)
			}
			r.TLSData = &b
		}
		if r.SSH != nil && (r.TokenFile != "" || r.TLSCA != "" || r.TLSCert != "" || r.TLSKey != "" || r.TLSServerName != "" || r.TLSData != nil) {
			return nil, fmt.Errorf("remote %q: token_file and the tls_* keys do not apply to an ssh:// url (ssh authenticates; see --ssh-command)", name)
		}
		if prev, dup := out[strings.ToLower(name)]; dup {
			return nil, fmt.Errorf("remotes %q and %q differ only in letter case, and remote names are not case-sensitive: rename or remove one", prev.Name, name)
		}
		out[strings.ToLower(name)] = r
	}
	return out, nil
}
