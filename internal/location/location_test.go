package location

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	remotes := map[string]Remote{"nodeA": {Agents: []string{"10.0.0.1:7878"}},
		"lab":      {SSH: &SSH{User: "me", Host: "lab", Root: "~/data"}},
		"clusterA": {Etcd: &Etcd{Endpoints: []string{"http://e1:2379"}, Cluster: "c1"}}}
	tests := []struct {
		in       string
		local    bool
		addr     string
		ssh      *SSH // the far side of an ssh location
		path     string
		errMatch string
	}{
		{in: "./results", local: true, path: "./results"},
		{in: "/abs/dir", local: true, path: "/abs/dir"},
		{in: "rel/dir", local: true, path: "rel/dir"},
		{in: "./a:b", local: true, path: "./a:b"},
		{in: "xfer://127.0.0.1:7878/incoming", addr: "127.0.0.1:7878", path: "incoming"},
		{in: "xfer://127.0.0.1:7878", addr: "127.0.0.1:7878", path: ""},
		{in: "xfer://[::1]:7878/a//b/", addr: "[::1]:7878", path: "a/b"},
		{in: "nodeA:/proj", addr: "10.0.0.1:7878", path: "proj"},
		{in: "nodeA:proj/x", addr: "10.0.0.1:7878", path: "proj/x"},
		{in: "nodeB:/proj", errMatch: "unknown remote"},
		{in: "clusterA:/proj", path: "proj"}, // its agents come from etcd
		{in: "xfer://127.0.0.1:7878/../etc", errMatch: "climbs out"},
		{in: "nodeA:../x", errMatch: "climbs out"},
		{in: "xfer://hostonly/x", errMatch: "HOST:PORT"},
		{in: "xfer://u@h:1/x", errMatch: "want xfer://"},
		{in: "", errMatch: "empty"},
		{in: "a\x00b", errMatch: "NUL"},
		{in: "ssh://me@host/srv/data", ssh: &SSH{User: "me", Host: "host", Root: "/"}, path: "srv/data"},
		{in: "ssh://host:2222/~/x/y", ssh: &SSH{Host: "host", Port: "2222", Root: "~"}, path: "x/y"},
		{in: "ssh://host", ssh: &SSH{Host: "host", Root: "~"}},
		{in: "ssh://host/~", ssh: &SSH{Host: "host", Root: "~"}},
		{in: "ssh://[::1]:22/tmp", ssh: &SSH{Host: "::1", Port: "22", Root: "/"}, path: "tmp"},
		{in: "lab:sub/f", ssh: &SSH{User: "me", Host: "lab", Root: "~/data"}, path: "sub/f"},
		{in: "ssh://host/~bob/x", errMatch: "~USER"},
		{in: "ssh://u:pw@host/x", errMatch: "no password"},
		{in: "ssh://-oProxyCommand=x/y", errMatch: "cannot start with '-'"},
		{in: "ssh://host:0/x", errMatch: "port"},
		{in: "ssh://host/../etc", errMatch: "climbs out"},
		{in: "ssh:///x", errMatch: "want ssh://"},
	}
	for _, tt := range tests {
		l, err := Parse(tt.in, remotes)
		if tt.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errMatch) {
				t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.errMatch)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if l.IsLocal() != tt.local || l.Addr() != tt.addr || l.Path != tt.path {
			t.Errorf("Parse(%q) = local %v addr %q path %q, want %v %q %q", tt.in, l.IsLocal(), l.Addr(), l.Path, tt.local, tt.addr, tt.path)
		}
		if got := sshOf(l); (got == nil) != (tt.ssh == nil) || got != nil && *got != *tt.ssh {
			t.Errorf("Parse(%q) far side = %+v, want %+v", tt.in, got, tt.ssh)
		}
	}
	for _, s := range []string{"ssh://me@lab/~/data", "ssh://h:2222/srv", "ssh://[::1]/~"} {
		t2, err := ParseSSHURL(s)
		if err != nil || t2.URL() != s {
			t.Errorf("ParseSSHURL(%q).URL() = %q, %v; want it back", s, t2.URL(), err)
		}
	}
}

func sshOf(l Location) *SSH {
	if l.Remote == nil {
		return nil
	}
	return l.Remote.SSH
}

func TestRemotesFromConfig(t *testing.T) {
	got, err := RemotesFromConfig(map[string]any{
		"a": map[string]any{"url": "xfer://h:1"},
		"b": map[string]any{"agents": []any{"h1:1", "h2:2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"].Agents) != 1 || got["a"].Agents[0] != "h:1" || len(got["b"].Agents) != 2 {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []map[string]any{
		{"a": "str"},
		{"a": map[string]any{}},
		{"a b": map[string]any{"address": "h:1"}},
		{"a": map[string]any{"address": "nohost"}},
	} {
		if _, err := RemotesFromConfig(bad); err == nil {
			t.Errorf("RemotesFromConfig(%v) accepted", bad)
		}
	}
}

func TestRemotesFromConfigSSH(t *testing.T) {
	got, err := RemotesFromConfig(map[string]any{"lab": map[string]any{"url": "ssh://me@lab:2222/~/data"}})
	if err != nil || got["lab"].SSH == nil || *got["lab"].SSH != (SSH{User: "me", Host: "lab", Port: "2222", Root: "~/data"}) {
		t.Fatalf("RemotesFromConfig = %+v, %v", got["lab"], err)
	}
	for _, bad := range []map[string]any{
		{"url": "ssh://lab/x", "token_file": "/t"},
		{"url": "ssh://lab/x", "agents": []any{"h:1"}},
		{"url": "ssh://lab/~bob"},
	} {
		if _, err := RemotesFromConfig(map[string]any{"lab": bad}); err == nil {
			t.Errorf("RemotesFromConfig(%v) accepted it", bad)
		}
	}
}

func TestParseSSHShort(t *testing.T) {
	for in, want := range map[string]string{
		"me@lab:data":    "ssh://me@lab/~/data",
		"lab:/srv/x":     "ssh://lab/srv/x",
		"lab":            "ssh://lab/~",
		"lab:~/d":        "ssh://lab/~/d",
		"me@[::1]:/data": "ssh://me@[::1]/data",
	} {
		got, err := ParseSSHShort(in)
		if err != nil || got.URL() != want {
			t.Errorf("ParseSSHShort(%q) = %q, %v; want %s", in, got.URL(), err, want)
		}
	}
	for _, bad := range []string{"", ":x", "a/b:c", "lab:../x", "[::1:x"} {
		if _, err := ParseSSHShort(bad); err == nil {
			t.Errorf("ParseSSHShort(%q) accepted it", bad)
		}
	}
}

func TestRemotesFromConfigEtcd(t *testing.T) {
	got, err := RemotesFromConfig(map[string]any{"c": map[string]any{"etcd": []any{"http://e1:2379", "http://e2:2379"},
		"cluster": "c1", "etcd_cacert": "/ca.pem"}})
	if err != nil || got["c"].Etcd == nil || got["c"].Etcd.Cluster != "c1" || len(got["c"].Etcd.Endpoints) != 2 || got["c"].Etcd.CACert != "/ca.pem" {
		t.Fatalf("RemotesFromConfig = %+v, %v", got["c"], err)
	}
	for _, bad := range []map[string]any{
		{"etcd": []any{"http://e1:2379"}},
		{"etcd": []any{"http://e1:2379"}, "cluster": "bad name"},
		{"etcd": []any{}, "cluster": "c1"},
		{"etcd": []any{1}, "cluster": "c1"},
		{"etcd": []any{"http://e1:2379"}, "cluster": "c1", "agents": []any{"h:1"}},
	} {
		if _, err := RemotesFromConfig(map[string]any{"c": bad}); err == nil {
			t.Errorf("RemotesFromConfig(%v) accepted it", bad)
		}
	}
}
