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
// are not UTF-8 carry path_b64 beside a readable path, and no U+FFFD.
func TestEventJSON(t *testing.T) {
	for _, p := range []string{"a/b", "\xff\xfe", "\xfe\xff", "d\xff/f", "a<b>&c", ""} {
		e := Event{Event: KindTransfer, Path: p, Bytes: 3, Error: "write " + p + ": failed"}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
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
