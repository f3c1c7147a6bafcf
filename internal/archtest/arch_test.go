package archtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layers is the module's layer table, lowest first. A package may import
// packages of lower rows, and of its own row only where peers is true.
// Imports point one way: cmd -> transfer -> send ->
// receive/casnet/bench/cluster -> session -> wire -> leaves.
//
// The services over a session (receive, casnet, bench) and the cluster
// coordinator are independent of each other: the coordinator asks the
// façade's Runner to run each agent pair's part, so it imports no engine,
// and the share policy it relies on is in plan/. send may import receive,
// whose receiver is the local destination.
// Entries for packages that do not exist (yet) simply match nothing.
var layers = []layer{
	{name: "leaves", peers: true, pkgs: []string{
		"internal/*", "plan", "ui", "backends", "backends/*", "mover",
	}},
	{name: "wire", pkgs: []string{"transfer/wire"}},
	{name: "session", pkgs: []string{"transfer/session", "transfer/sshconn"}},
	// The tests' helper that serves and dials a session on loopback.
	{name: "session tests", pkgs: []string{"transfer/session/sessiontest"}},
	{name: "services", pkgs: []string{"transfer/receive", "transfer/casnet", "transfer/bench", "transfer/cluster"}},
	// The choice of transport for --proto auto measures through bench.
	{name: "probe", pkgs: []string{"transfer/protoprobe"}},
	{name: "send", pkgs: []string{"transfer/send"}},
	{name: "transfer", pkgs: []string{"transfer"}},
	// The mover daemon serves packs through transfer's façade.
	{name: "daemon", pkgs: []string{"daemon"}},
	{name: "cmd", pkgs: []string{"cmd", "cmd/*"}},
	// Programs and test-only packages on top: main.go, the generators
	// (gendocs renders cmd's flags), the end-to-end tests, the packaging
	// checks and this package.
	{name: "programs", pkgs: []string{
		".", "internal/gendocs", "internal/gentree", "internal/archtest", "internal/peertest", "e2e", "packaging/*",
	}},
}

// allowedGlobals are the package-level vars outside cmd/ that hold no
// mutable state: never written after package initialisation. Each entry
// says why. Keep it short: prefer a const, a function or a field.
var allowedGlobals = map[string]string{
	"backends.registry":            "written only by Register from the transports' init functions, before main runs (the database/sql driver pattern); read-only afterwards",
	"backends.preference":          "a constant order of transport names; read, never written, and never handed out (callers get copies)",
	"backends/uring.neededOps":     "a constant table of opcodes and kernel releases, only ranged over",
	"internal/cas.castagnoli":      "the CRC-32C table, built once at init and only read (crc32.Table is safe for concurrent use)",
	"internal/config.yamlLineRE":   "a compiled regexp: immutable and safe for concurrent use",
	"internal/config.remoteKeys":   "a constant lookup table of config keys, only read",
	"internal/location.nameRE":     "a compiled regexp: immutable and safe for concurrent use",
	"internal/progress.Discard":    "a Sink that holds nothing (an empty func); never reassigned",
	"internal/progress.eventNames": "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"plan.ruleNames":               "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.reqNames":       "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.entryNames":     "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.metaOpNames":    "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.fileSpecNames":  "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.jobSpecNames":   "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
	"transfer/wire.unitDirNames":   "a progress.NameCodec: built at init, read-only afterwards (no method writes it)",
}

// allowedJSON are the files of transfer/... outside transfer/wire that may
// use encoding/json for something that is no message (an on-disk format),
// by path, each with the reason.
var allowedJSON = map[string]string{
	"transfer/protoprobe/cache.go": "the per-peer cache of transport probe results, a file under the user's cache directory (docs/transports.md); never sent to a peer",
	"transfer/receive/journal.go":  "the header line of a partial file's journal, an on-disk format read back only by the receiver (docs/design.md, section Durability and partial files); never sent to a peer",
}

// moduleRoot is the directory holding this module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestModule runs every rule on this module; a finding fails the test
// unless allowedGlobals or allowedJSON accepts it, and an allowlist entry
// that accepts nothing fails it too.
func TestModule(t *testing.T) {
	tr, err := load(moduleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".", "cmd", "transfer", "plan", "internal/archtest"} {
		if tr.pkgs[p] == nil {
			t.Fatalf("package %s not found under %s: the loader is broken", p, tr.root)
		}
	}
	used := map[string]bool{}
	rules := []struct {
		name  string
		find  []finding
		allow []map[string]string
	}{
		{"layers", checkLayers(tr, layers), nil},
		{"globals", checkGlobals(tr), []map[string]string{allowedGlobals}},
		{"json", checkJSON(tr), []map[string]string{allowedJSON}},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			fs := r.find
			for _, a := range r.allow {
				fs = filter(fs, a, used)
			}
			for _, f := range fs {
				t.Error(f.msg)
			}
		})
	}
	for _, l := range []struct {
		name string
		list map[string]string
	}{{"allowedGlobals", allowedGlobals}, {"allowedJSON", allowedJSON}} {
		if stale := unused(l.list, used); len(stale) > 0 {
			t.Errorf("%s entries that match nothing any more (remove them): %s", l.name, strings.Join(stale, ", "))
		}
	}
}
