package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xfer-io/xfer/transfer"
)

// dialFor settles args for the command at path and returns the
// DialOptions it would dial a peer with (auth from its own flags), and
// what it printed on stderr.
func dialFor(t *testing.T, path, args []string, env map[string]string, cfg string) (transfer.DialOptions, string) {
	t.Helper()
	var stderr bytes.Buffer
	a, err := settleWith(t, &stderr, path, args, env, cfg)
	if err != nil {
		t.Fatalf("%v %v: %v", path, args, err)
	}
	pa, err := a.peerAuth(nil)
	if err != nil {
		t.Fatalf("%v %v: peer auth: %v", path, args, err)
	}
	do, err := a.dialOptions(pa)
	if err != nil {
		t.Fatalf("%v %v: %v", path, args, err)
	}
	do.Log = nil // each app has a logger of its own
	return do, stderr.String()
}

// TestDialFlagsSameEverywhere: every command that dials a peer reads the
// same flags, under the same names, into the same DialOptions, whether
// they come from the command line, XFER_*, IOURING_ENTRIES or the file.
func TestDialFlagsSameEverywhere(t *testing.T) {
	// The commands that dial a peer: each declares the dial flags with
	// addDialFlags.
	peerCommands := [][]string{
		{"copy"}, {"sync"}, {"bench"},
		{"cas", "put"}, {"cas", "get"}, {"cas", "has"}, {"cas", "stat"},
		{"daemon"},
	}
	token := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600))
	want := transfer.DialOptions{
		Proto:          "tcp",
		Streams:        3,
		ConnectTimeout: 5 * time.Second,
		IdleTimeout:    7 * time.Second,
		UringEntries:   64,
		ClientVersion:  versionString(),
		Token:          []byte("0123456789abcdef0123"),
	}
	sources := []struct {
		name string
		args []string
		env  map[string]string
		cfg  string
	}{
		{name: "flags", args: []string{"--proto", "tcp", "--streams", "3", "--connect-timeout", "5s", "--timeout", "7s", "--uring-entries", "64", "--token-file", token}},
		{name: "XFER_*", env: map[string]string{"XFER_PROTO": "tcp", "XFER_STREAMS": "3", "XFER_CONNECT_TIMEOUT": "5s", "XFER_TIMEOUT": "7s", "XFER_URING_ENTRIES": "64", "XFER_TOKEN_FILE": token}},
		{name: "IOURING_ENTRIES", args: []string{"--proto", "tcp", "--streams", "3", "--connect-timeout", "5s", "--timeout", "7s", "--token-file", token}, env: map[string]string{"IOURING_ENTRIES": "64"}},
		{name: "config file", cfg: "proto: tcp\nstreams: 3\nconnect-timeout: 5s\ntimeout: 7s\nuring-entries: 64\ntoken-file: " + token + "\n"},
	}
	for _, src := range sources {
		for _, path := range peerCommands {
			t.Run(src.name+"/"+strings.Join(path, " "), func(t *testing.T) {
				got, stderr := dialFor(t, path, src.args, src.env, src.cfg)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("DialOptions %+v, want %+v", got, want)
				}
				if stderr != "" {
					t.Errorf("stderr %q, want nothing", stderr)
				}
			})
		}
	}
}

// TestDaemonIouringEntriesAlias: --iouring-entries, the daemon's former
// name for --uring-entries, still sets it from every source, with a
// deprecation notice, and never beats --uring-entries from a source that
// ranks higher.
func TestDaemonIouringEntriesAlias(t *testing.T) {
	daemon := []string{"daemon"}
	const flagNotice = "Flag --iouring-entries has been deprecated, use --uring-entries instead\n"
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		cfg    string
		want   int
		notice string // "" for none
	}{
		{name: "flag", args: []string{"--iouring-entries", "64"}, want: 64, notice: flagNotice},
		{name: "flag=", args: []string{"--iouring-entries=64"}, want: 64, notice: flagNotice},
		{name: "new name", args: []string{"--uring-entries", "64"}, want: 64},
		{name: "env", env: map[string]string{"XFER_IOURING_ENTRIES": "64"}, want: 64,
			notice: "xfer: warning: XFER_IOURING_ENTRIES is deprecated: use XFER_URING_ENTRIES\n"},
		{name: "config key", cfg: "iouring-entries: 64\n", want: 64, notice: `key "iouring-entries" is deprecated: use "uring-entries"`},
		{name: "mover's name", env: map[string]string{"IOURING_ENTRIES": "64"}, want: 64},
		{name: "old flag beats new env", args: []string{"--iouring-entries", "32"}, env: map[string]string{"XFER_URING_ENTRIES": "64"}, want: 32, notice: flagNotice},
		{name: "old flag beats new key", args: []string{"--iouring-entries", "32"}, cfg: "uring-entries: 64\n", want: 32, notice: flagNotice},
		{name: "new flag beats old env", args: []string{"--uring-entries", "32"}, env: map[string]string{"XFER_IOURING_ENTRIES": "64"}, want: 32},
		{name: "new flag beats old key", args: []string{"--uring-entries", "32"}, cfg: "iouring-entries: 64\n", want: 32},
		{name: "new env beats old env", env: map[string]string{"XFER_URING_ENTRIES": "32", "XFER_IOURING_ENTRIES": "64"}, want: 32},
		{name: "old env beats the mover's name", env: map[string]string{"XFER_IOURING_ENTRIES": "32", "IOURING_ENTRIES": "64"}, want: 32,
			notice: "XFER_IOURING_ENTRIES is deprecated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stderr := dialFor(t, daemon, tt.args, tt.env, tt.cfg)
			if got.UringEntries != tt.want {
				t.Errorf("UringEntries %d, want %d", got.UringEntries, tt.want)
			}
			if (tt.notice == "") != (stderr == "") || !strings.Contains(stderr, tt.notice) {
				t.Errorf("stderr %q, want %q", stderr, tt.notice)
			}
			// Apart from the name, the old flag is the new one.
			same, _ := dialFor(t, daemon, []string{"--uring-entries", "64"}, nil, "")
			got.UringEntries = 64
			if !reflect.DeepEqual(got, same) {
				t.Errorf("DialOptions %+v, want %+v", got, same)
			}
		})
	}
}

// TestDaemonIouringEntriesRange: the alias refuses what the flag refuses,
// naming the flag as given.
func TestDaemonIouringEntriesRange(t *testing.T) {
	_, err := settleFor(t, []string{"daemon"}, []string{"--iouring-entries", "99999"}, nil, "")
	if err == nil || err.Error() != `--iouring-entries "99999": want a whole number from 0 to 32768` {
		t.Fatalf("error %v", err)
	}
	if code := usageCode(err); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
}

// TestDeprecatedAliasHidden: the old name appears in no help and no
// completion, the new one does.
func TestDeprecatedAliasHidden(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&app{stdout: &out, stderr: &out})
	root.SetOut(&out)
	root.SetArgs([]string{"daemon", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	if strings.Contains(help, "      --iouring-entries") || !strings.Contains(help, "--uring-entries int") {
		t.Errorf("daemon --help:\n%s", help)
	}
}
