package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
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

// eventJSON is Event without its methods, for its codec eventNames: its
// path is a name.
type eventJSON Event

var eventNames = NewNameCodec[eventJSON]("Path")

// MarshalJSON encodes the event with its path kept exactly (see
// SplitName) and its messages escaped. Fields keep their order, but for
// the path of a name that is not valid UTF-8, which comes last.
func (e Event) MarshalJSON() ([]byte, error) {
	if b, ok := e.appendSimple(nil); ok {
		return b, nil
	}
	e.Error, e.Msg = EscapeInvalid(e.Error), EscapeInvalid(e.Msg)
	if utf8.ValidString(e.Path) {
		return marshalPlain(eventJSON(e))
	}
	return marshalPlain(eventNames.value(eventJSON(e)))
}

// appendSimple appends the encoding of a per-file event (only event,
// time, path, action, bytes and blake3 set, each string printable ASCII
// without quote or backslash) to b, byte for byte what the reflective
// encoder writes, and false for any other event. --json prints one such
// event per file, so this is the common case that must stay cheap.
func (e *Event) appendSimple(b []byte) ([]byte, bool) {
	rest := *e
	rest.Event, rest.Time, rest.Path, rest.Action, rest.Bytes, rest.Digest = "", "", "", "", 0, ""
	if !reflect.ValueOf(rest).IsZero() {
		return nil, false
	}
	for _, s := range [...]string{e.Event, e.Time, e.Path, e.Action, e.Digest} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				return nil, false
			}
		}
	}
	field := func(key, v string) {
		if v != "" {
			b = append(b, `,"`...)
			b = append(b, key...)
			b = append(b, `":"`...)
			b = append(b, v...)
			b = append(b, '"')
		}
	}
	b = append(b, `{"event":"`...)
	b = append(b, e.Event...)
	b = append(b, '"')
	field("time", e.Time)
	field("path", e.Path)
	field("action", e.Action)
	if e.Bytes != 0 {
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, e.Bytes, 10)
	}
	field("blake3", e.Digest)
	return append(b, '}'), true
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (e *Event) UnmarshalJSON(b []byte) error {
	return eventNames.Unmarshal(b, (*eventJSON)(e))
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

// NameCodec is the JSON encoding of a struct type P some of whose string
// fields hold names, kept exactly the way SplitName says. It is P's own
// encoding (its fields, tags and order, as encoding/json writes them),
// but for the name fields, which come after all others in the order
// given to NewNameCodec, each under its own key with its "omitempty" if
// it has one, and each followed by "<key>_b64" with the exact bytes when
// the name is not valid UTF-8.
//
// P has no methods: it is the twin of a message type T (`type tJSON T`)
// whose MarshalJSON and UnmarshalJSON convert to P and call Marshal and
// Unmarshal. A codec is built once per type, at package initialisation
// (it derives two struct types by reflection, which costs more than a
// message), and is read-only afterwards and safe for concurrent use.
type NameCodec[P any] struct {
	enc    reflect.Type // P embedded, then shown and raw of each name
	dec    reflect.Type // *P embedded, then shown and raw of each name
	fields []int        // the name fields' indexes in P
}

// NewNameCodec builds the codec of P, whose string fields named (by their
// Go names) hold names. It panics when P is not a struct without methods
// or a field is missing or not a string: a mistake in the program, which
// any test of the package finds.
func NewNameCodec[P any](names ...string) NameCodec[P] {
	t := reflect.TypeFor[P]()
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).NumMethod() != 0 {
		panic(fmt.Sprintf("progress.NewNameCodec: %s is not a struct without methods", t))
	}
	var c NameCodec[P]
	enc := []reflect.StructField{{Name: "Plain", Type: t, Anonymous: true}}
	dec := []reflect.StructField{{Name: "Plain", Type: reflect.PointerTo(t), Anonymous: true}}
	str, raw := reflect.TypeFor[string](), reflect.TypeFor[[]byte]()
	for _, name := range names {
		f, ok := t.FieldByName(name)
		if !ok || f.Type != str || len(f.Index) != 1 {
			panic(fmt.Sprintf("progress.NewNameCodec: %s has no string field %s", t, name))
		}
		key, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if key == "" {
			key = f.Name
		}
		omit := ""
		if strings.Contains(","+opts+",", ",omitempty,") {
			omit = ",omitempty"
		}
		enc = append(enc,
			reflect.StructField{Name: f.Name, Type: str, Tag: reflect.StructTag(`json:"` + key + omit + `"`)},
			reflect.StructField{Name: f.Name + "B64", Type: raw, Tag: reflect.StructTag(`json:"` + key + `_b64,omitempty"`)})
		dec = append(dec,
			reflect.StructField{Name: f.Name, Type: str, Tag: reflect.StructTag(`json:"` + key + `"`)},
			reflect.StructField{Name: f.Name + "B64", Type: raw, Tag: reflect.StructTag(`json:"` + key + `_b64"`)})
		c.fields = append(c.fields, f.Index[0])
	}
	c.enc, c.dec = reflect.StructOf(enc), reflect.StructOf(dec)
	return c
}

// Marshal encodes v.
func (c NameCodec[P]) Marshal(v P) ([]byte, error) {
	return json.Marshal(c.value(v))
}

// value is v as the struct Marshal encodes (a pointer to it).
func (c NameCodec[P]) value(v P) any {
	src := reflect.ValueOf(v)
	p := reflect.New(c.enc)
	w := p.Elem()
	w.Field(0).Set(src)
	for i, f := range c.fields {
		shown, raw := SplitName(src.Field(f).String())
		w.Field(1 + 2*i).SetString(shown)
		w.Field(2 + 2*i).SetBytes(raw)
	}
	return p.Interface()
}

// Unmarshal decodes what Marshal wrote into *v, like json.Unmarshal (the
// fields the JSON does not hold keep their values), but for the name
// fields, which it always sets (to "" when the JSON holds no name).
func (c NameCodec[P]) Unmarshal(b []byte, v *P) error {
	w := reflect.New(c.dec).Elem()
	w.Field(0).Set(reflect.ValueOf(v))
	if err := json.Unmarshal(b, w.Addr().Interface()); err != nil {
		return err
	}
	dst := reflect.ValueOf(v).Elem()
	for i, f := range c.fields {
		dst.Field(f).SetString(JoinName(w.Field(1+2*i).String(), w.Field(2+2*i).Bytes()))
	}
	return nil
}
