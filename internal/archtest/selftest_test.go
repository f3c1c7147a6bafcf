package archtest

// The rules on synthetic modules written to t.TempDir(): each case says
// which findings a rule must report, so a rule that stops firing (or
// fires on what it should accept) fails here.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// synth writes files (path relative to the module root -> contents) under
// a new module example.com/synth and loads it.
func synth(t *testing.T, files map[string]string) *tree {
	t.Helper()
	root := t.TempDir()
	files["go.mod"] = "module example.com/synth\n\ngo 1.22\n"
	for name, src := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := load(root)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// expect compares findings with want, each a substring of one message
// ("file:line: ..."), one to one.
func expect(t *testing.T, got []finding, want []string) {
	t.Helper()
	var msgs []string
	for _, f := range got {
		msgs = append(msgs, f.msg)
	}
	left := slices.Clone(msgs)
	for _, w := range want {
		i := slices.IndexFunc(left, func(m string) bool { return strings.Contains(m, w) })
		if i < 0 {
			t.Errorf("no finding %q among:\n\t%s", w, strings.Join(msgs, "\n\t"))
			continue
		}
		left = slices.Delete(left, i, i+1)
	}
	for _, m := range left {
		t.Errorf("unexpected finding: %s", m)
	}
}

// ruleCase is one synthetic tree a rule is run on and the findings it
// must give (as for expect).
type ruleCase struct {
	name  string
	files map[string]string
	want  []string
}

// checkRule runs check on each case's tree in a subtest named after it.
func checkRule(t *testing.T, check func(*tree) []finding, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, check(synth(t, tc.files)), tc.want)
		})
	}
}

func imp(pkg string, paths ...string) string {
	s := "package " + pkg + "\n\nimport (\n"
	for _, p := range paths {
		s += "\t_ \"" + p + "\"\n"
	}
	return s + ")\n"
}

const m = "example.com/synth/"

func TestLayersRule(t *testing.T) {
	checkRule(t, func(tr *tree) []finding { return checkLayers(tr, layers) }, []ruleCase{
		{"downward imports pass", map[string]string{
			"main.go":                  imp("main", m+"cmd"),
			"cmd/cmd.go":               imp("cmd", m+"transfer", m+"daemon", m+"plan"),
			"daemon/d.go":              imp("daemon", m+"transfer", m+"mover"),
			"mover/m.go":               imp("mover", m+"internal/cas"),
			"internal/cas/c.go":        "package cas\n",
			"plan/p.go":                imp("plan", m+"internal/cas"),
			"transfer/t.go":            imp("transfer", m+"transfer/cluster", m+"transfer/send", m+"transfer/wire"),
			"transfer/cluster/c.go":    imp("cluster", m+"transfer/session", m+"plan"),
			"transfer/send/s.go":       imp("send", m+"transfer/receive", m+"transfer/session"),
			"transfer/receive/r.go":    imp("receive", m+"transfer/session", m+"transfer/wire"),
			"transfer/session/s.go":    imp("session", m+"transfer/wire", m+"backends/tcp"),
			"transfer/wire/w.go":       imp("wire", m+"plan"),
			"backends/tcp/t.go":        imp("tcp", m+"backends"),
			"backends/b.go":            "package backends\n",
			"plan/x_test.go":           imp("plan_test", m+"transfer"), // an external test package may import anything
			"internal/gendocs/main.go": imp("main", m+"cmd"),
		}, nil},
		{"a leaf imports transfer", map[string]string{
			"plan/p.go":     imp("plan", m+"transfer"),
			"transfer/t.go": "package transfer\n",
		}, []string{`plan/p.go:4: plan (layer "leaves") may not import transfer (layer "transfer", above it)`}},
		{"a leaf imports a transfer sub-package", map[string]string{
			"internal/cas/c.go":  imp("cas", m+"transfer/wire"),
			"transfer/wire/w.go": "package wire\n",
		}, []string{`internal/cas (layer "leaves") may not import transfer/wire`}},
		{"wire imports session", map[string]string{
			"transfer/wire/w.go":    imp("wire", m+"transfer/session"),
			"transfer/session/s.go": "package session\n",
		}, []string{`transfer/wire (layer "wire") may not import transfer/session (layer "session", above it)`}},
		{"session imports a service", map[string]string{
			"transfer/session/s.go": imp("session", m+"transfer/casnet"),
			"transfer/casnet/c.go":  "package casnet\n",
		}, []string{`transfer/session (layer "session") may not import transfer/casnet`}},
		{"cluster imports send", map[string]string{
			"transfer/cluster/c.go": imp("cluster", m+"transfer/send"),
			"transfer/send/s.go":    "package send\n",
		}, []string{`transfer/cluster (layer "services") may not import transfer/send`}},
		{"services import each other", map[string]string{
			"transfer/casnet/c.go": imp("casnet", m+"transfer/bench"),
			"transfer/bench/b.go":  "package bench\n",
		}, []string{`transfer/casnet and transfer/bench are both in layer "services"`}},
		{"transfer imports daemon, cmd", map[string]string{
			"transfer/t.go": imp("transfer", m+"daemon", m+"cmd"),
			"daemon/d.go":   "package daemon\n",
			"cmd/c.go":      "package cmd\n",
		}, []string{`transfer (layer "transfer") may not import daemon`, `transfer (layer "transfer") may not import cmd`}},
		{"an in-package test imports upward", map[string]string{
			"plan/p_test.go": imp("plan", m+"transfer"),
			"transfer/t.go":  "package transfer\n",
		}, []string{`plan/p_test.go:4: plan (layer "leaves") may not import transfer`}},
		{"a package in no layer", map[string]string{
			"newpkg/n.go": "package newpkg\n",
			"plan/p.go":   imp("plan", m+"newpkg"),
		}, []string{
			"package newpkg is in no layer: add it to the layers table",
			"plan/p.go:4: package newpkg is in no layer",
		}},
	})
}

// mayImport on the module's table, for the edges the issue names.
func TestLayerTable(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"cmd", "transfer", true},
		{"cmd", "daemon", true},
		{"daemon", "transfer", true},
		{"daemon", "mover", true},
		{"transfer", "transfer/send", true},
		{"transfer", "transfer/cluster", true},
		{"transfer/cluster", "transfer/session", true},
		{"transfer/send", "transfer/cluster", true},
		{"transfer/send", "transfer/receive", true},
		{"transfer/send", "transfer/casnet", true},
		{"transfer/receive", "transfer/session", true},
		{"transfer/bench", "transfer/session", true},
		{"transfer/session", "transfer/wire", true},
		{"transfer/session", "backends", true},
		{"transfer/wire", "plan", true},
		{"internal/watch", "plan", true},
		{"backends/all", "backends/tcp", true},
		{"mover", "internal/cas", true},
		{".", "cmd", true},
		{"internal/gendocs", "cmd", true},
		{"e2e", "transfer", true},

		{"plan", "transfer", false},
		{"mover", "transfer", false},
		{"backends/tcp", "transfer/session", false},
		{"internal/cas", "transfer/wire", false},
		{"transfer/wire", "transfer/session", false},
		{"transfer/session", "transfer/receive", false},
		{"transfer/receive", "transfer/send", false},
		{"transfer/receive", "transfer/casnet", false},
		{"transfer/cluster", "transfer/send", false},
		{"transfer/cluster", "transfer/receive", false},
		{"transfer/send", "transfer", false},
		{"transfer", "daemon", false},
		{"transfer", "cmd", false},
		{"daemon", "cmd", false},
		{"cmd", "internal/gendocs", false},
		{"transfer/newthing", "transfer/wire", false}, // in no layer
	} {
		ok, why := mayImport(layers, tc.from, tc.to)
		if ok != tc.ok {
			t.Errorf("mayImport(%s, %s) = %v (%s), want %v", tc.from, tc.to, ok, why, tc.ok)
		}
	}
}

func TestGlobalsRule(t *testing.T) {
	checkRule(t, checkGlobals, []ruleCase{
		{"accepted forms", map[string]string{
			"plan/p.go": `package plan

import (
	"errors"
	"fmt"
)

type T struct{}

func (T) String() string { return "" }

type BadError struct{}

func (*BadError) Error() string { return "" }

var ErrA = errors.New("a")

var (
	ErrB        = fmt.Errorf("b: %w", ErrA)
	errC        = &BadError{}
	_           fmt.Stringer = T{}
	_, _        = 1, 2
	ErrD  error = errors.New("d")
)
`,
			"plan/p_test.go": "package plan\n\nvar testState int\n",
			"cmd/c.go":       "package cmd\n\nvar version = \"dev\"\n",
			"cmd/sub/s.go":   "package sub\n\nvar flags []string\n",
			"main.go":        "package main\n\nvar state int\n\nfunc main() {}\n",
		}, nil},
		{"mutable state", map[string]string{
			"plan/p.go": `package plan

import "sync"

var counter int

var (
	mu        sync.Mutex
	cache     = map[string]int{}
	a, b      = 1, 2
	hook      func()
	notErr    = notAnError()
)

func notAnError() error { return nil }
`,
			"transfer/t.go": "package transfer\n\nimport \"sync\"\n\nvar states sync.Map\n",
		}, []string{
			"plan/p.go:5: package-level var counter is mutable state",
			"plan/p.go:8: package-level var mu",
			"plan/p.go:9: package-level var cache",
			"plan/p.go:10: package-level var a",
			"plan/p.go:10: package-level var b",
			"plan/p.go:11: package-level var hook",
			"plan/p.go:12: package-level var notErr",
			"transfer/t.go:5: package-level var states",
		}},
	})
}

func TestJSONRule(t *testing.T) {
	checkRule(t, checkJSON, []ruleCase{
		{"wire encodes typed messages; JSON outside transfer is not this rule's", map[string]string{
			"transfer/wire/w.go": `package wire

import "encoding/json"

type Req struct {
	Op   string
	Path string
	Args CasArgs
}

type CasArgs struct{ Digest string }

func Encode(r Req) ([]byte, error) { return json.Marshal(r) }

func Decode(b []byte) (r Req, err error) {
	err = json.Unmarshal(b, &r)
	return r, err
}
`,
			"transfer/wire/w_test.go": "package wire\n\nimport \"encoding/json\"\n\nvar _ = json.Valid\n",
			"cmd/c.go": `package cmd

import "encoding/json"

type out struct{ SummaryJSON string }

func show(v any) string { b, _ := json.Marshal(v); return string(b) }
`,
		}, nil},
		{"JSON inside fields", map[string]string{
			"transfer/session/s.go": `package session

import "encoding/json"

type Req struct{ Path string }

type Resp struct{ Digest string }

type Call struct {
	Args     json.RawMessage
	ArgsJSON []byte
	ResJSON  string
	Count    int
}

func call(args any) (Req, error) {
	b, err := json.Marshal(args)
	return Req{Path: string(b)}, err
}

func reply(r Resp, v any) error {
	return json.Unmarshal([]byte(r.Digest), v)
}
`,
			"transfer/wire/w.go": `package wire

import j "encoding/json"

type Req struct{ Path string }

func wrap(v any) Req {
	var b, _ = j.Marshal(v)
	return Req{Path: string(b)}
}
`,
		}, []string{
			"transfer/session/s.go:3: package transfer/session imports encoding/json",
			"transfer/session/s.go:10: field Args is a json.RawMessage",
			"transfer/session/s.go:11: field ArgsJSON carries JSON",
			"transfer/session/s.go:12: field ResJSON carries JSON",
			"transfer/session/s.go:18: string(b) of a json.Marshal result",
			"transfer/session/s.go:22: json.Unmarshal of field Digest",
			"transfer/wire/w.go:9: string(b) of a json.Marshal result",
		}},
		{"the façade may not encode either", map[string]string{
			"transfer/t.go": "package transfer\n\nimport \"encoding/json\"\n\nvar _ = json.Valid\n",
		}, []string{"transfer/t.go:3: package transfer imports encoding/json"}},
	})
}

// An allowlist entry accepts the findings with its key, and one that
// accepts nothing is reported as stale.
func TestAllowlists(t *testing.T) {
	tr := synth(t, map[string]string{
		"plan/p.go": "package plan\n\nvar a, b int\n",
	})
	allow := map[string]string{"plan.a": "reason", "plan.gone": "reason"}
	used := map[string]bool{}
	expect(t, filter(checkGlobals(tr), allow, used), []string{"package-level var b"})
	if got := unused(allow, used); !slices.Equal(got, []string{"plan.gone"}) {
		t.Errorf("unused = %q, want [plan.gone]", got)
	}
}
