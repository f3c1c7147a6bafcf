package progress

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEscapeInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"日本", "日本"},
		{"\xff\xfe", `\xff\xfe`},
		{"caf\xe9/x", `caf\xe9/x`},
		{"ok\xc3", `ok\xc3`}, // a cut multi-byte sequence
		{"new\nline", "new\nline"},
	} {
		if got := EscapeInvalid(tc.in); got != tc.want {
			t.Errorf("EscapeInvalid(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestEventJSON: an event's path survives JSON byte for byte; names that
// are not UTF-8 carry path_b64 beside a readable path, and no U+FFFD; the
// JSON itself stays as it was (scripts read it).
func TestEventJSON(t *testing.T) {
	for _, tc := range []struct{ p, want string }{
		{"a/b", `{"event":"transfer","path":"a/b","bytes":3,"error":"write a/b: failed"}`},
		{"\xff\xfe", `{"event":"transfer","bytes":3,"error":"write \\xff\\xfe: failed","path":"\\xff\\xfe","path_b64":"//4="}`},
		{"\xfe\xff", `{"event":"transfer","bytes":3,"error":"write \\xfe\\xff: failed","path":"\\xfe\\xff","path_b64":"/v8="}`},
		{"d\xff/f", `{"event":"transfer","bytes":3,"error":"write d\\xff/f: failed","path":"d\\xff/f","path_b64":"ZP8vZg=="}`},
		{"a<b>&c", `{"event":"transfer","path":"a\u003cb\u003e\u0026c","bytes":3,"error":"write a\u003cb\u003e\u0026c: failed"}`},
		{"", `{"event":"transfer","bytes":3,"error":"write : failed"}`},
	} {
		p := tc.p
		e := Event{Event: KindTransfer, Path: p, Bytes: 3, Error: "write " + p + ": failed"}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%q: JSON %s, want %s", p, b, tc.want)
		}
		if strings.ContainsRune(string(b), '\ufffd') || strings.Contains(string(b), `\ufffd`) {
			t.Errorf("%q: %s holds U+FFFD", p, b)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: not JSON: %s", p, b)
		}
		if _, has := m["path_b64"]; has == (p == EscapeInvalid(p)) {
			t.Errorf("%q: path_b64 present=%v in %s", p, has, b)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil || back.Path != p || back.Bytes != 3 {
			t.Errorf("%q: round trip gave %+v (%v)", p, back, err)
		}
	}
}

// TestNewNameCodecRefuses: a codec for a type it cannot serve panics when
// it is built (at package initialisation), not when a message is sent.
func TestNewNameCodecRefuses(t *testing.T) {
	type withMethods = Event // has MarshalJSON: the codec would recurse
	type plain struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	}
	for _, tc := range []struct {
		name  string
		build func()
	}{
		{"type with methods", func() { NewNameCodec[withMethods]("Path") }},
		{"not a struct", func() { NewNameCodec[string]("Path") }},
		{"no such field", func() { NewNameCodec[plain]("Path") }},
		{"not a string", func() { NewNameCodec[plain]("Size") }},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			tc.build()
		}()
	}
	NewNameCodec[plain]("Name") // a fit type builds
}

// TestEventJSONSimple: the encoder of per-file events writes exactly what
// the reflective encoder writes, and every other event takes the latter.
func TestEventJSONSimple(t *testing.T) {
	tests := []struct {
		name   string
		e      Event
		simple bool
	}{
		{"transfer", Event{Event: KindTransfer, Time: "2026-12-04T21:15:35.964Z", Path: "d000/e000/f00002", Bytes: 3069}, true},
		{"event only", Event{Event: KindTransfer}, true},
		{"dry run action and digest", Event{Event: KindTransfer, Path: "a b", Action: "create", Digest: "ab12"}, true},
		{"negative bytes", Event{Event: KindTransfer, Path: "x", Bytes: -1}, true},
		{"html chars", Event{Event: KindTransfer, Path: "a<b>&c"}, true},
		{"quote", Event{Event: KindTransfer, Path: `a"b`}, false},
		{"backslash", Event{Event: KindTransfer, Path: `a\b`}, false},
		{"newline", Event{Event: KindTransfer, Path: "a\nb"}, false},
		{"utf-8", Event{Event: KindTransfer, Path: "ä"}, false},
		{"invalid utf-8", Event{Event: KindTransfer, Path: "a\xffb"}, false},
		{"error", Event{Event: KindError, Path: "x", Error: "boom"}, false},
		{"retry", Event{Event: KindTransfer, Path: "x", Retry: true}, false},
		{"in flight", Event{Event: KindTransfer, InFlight: []InFlight{}}, false},
		{"rate", Event{Event: KindTransfer, RateBps: 1.5}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ok := tc.e.appendSimple(nil)
			if ok != tc.simple {
				t.Fatalf("appendSimple ok = %v, want %v", ok, tc.simple)
			}
			if !ok {
				return // the reflective encoder, which TestEventJSON covers
			}
			got, err := tc.e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			want, err := marshalPlain(eventJSON(tc.e))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("MarshalJSON = %s, want %s", got, want)
			}
		})
	}
}
