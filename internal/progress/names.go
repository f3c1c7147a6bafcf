package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// File names are bytes: a name need not be valid UTF-8, but JSON strings
// must be (encoding/json turns every invalid byte into U+FFFD, so two
// different names could print alike). An event whose path is not valid
// UTF-8 therefore carries it twice: "path" is readable, each byte that is
// not part of valid UTF-8 written as \xNN, and "path_b64" holds the exact
// bytes in standard base64. Readers that need the exact name use path_b64
// when it is present; valid UTF-8 names appear only in "path", verbatim.
// Messages (error, msg) are for people: their invalid bytes are written
// as \xNN too.

// EscapeInvalid returns s unchanged when it is valid UTF-8; otherwise
// every byte that is not part of a valid UTF-8 sequence is replaced by
// \xNN (two lowercase hex digits), so the result is valid UTF-8 and
// still tells names apart that differ in such bytes.
func EscapeInvalid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// SplitName is how a name goes into JSON: the name itself and nil when it
// is valid UTF-8, else its escaped form and its exact bytes.
func SplitName(s string) (string, []byte) {
	if utf8.ValidString(s) {
		return s, nil
	}
	return EscapeInvalid(s), []byte(s)
}

// JoinName undoes SplitName: the exact bytes when there are any.
func JoinName(shown string, raw []byte) string {
	if raw != nil {
		return string(raw)
	}
	return shown
}

// MarshalJSON encodes the event with its path kept exactly (see
// SplitName) and its messages escaped. Fields keep their order, but for
// the path of a name that is not valid UTF-8, which comes last.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	p := plain(e)
	p.Error, p.Msg = EscapeInvalid(e.Error), EscapeInvalid(e.Msg)
	if utf8.ValidString(e.Path) {
		return marshalPlain(p)
	}
	w := struct {
		plain
		Path    string `json:"path,omitempty"`
		PathB64 []byte `json:"path_b64,omitempty"`
	}{plain: p}
	w.Path, w.PathB64 = SplitName(e.Path)
	return marshalPlain(w)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var w struct {
		*plain
		Path    string `json:"path"`
		PathB64 []byte `json:"path_b64"`
	}
	w.plain = (*plain)(e)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Path = JoinName(w.Path, w.PathB64)
	return nil
}

// marshalPlain is json.Marshal without HTML escaping, as --json prints.
func marshalPlain(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
