package wire

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/xfer-io/xfer/internal/progress"
	"github.com/xfer-io/xfer/plan"
)

// JSON control messages carry file names, which are bytes and need not
// be valid UTF-8, while a JSON string must be (encoding/json would turn
// each invalid byte into U+FFFD and merge names). Every name field is
// therefore written the way progress events write their path: the name
// itself when it is valid UTF-8, else an escaped form plus a sibling
// "<field>_b64" with the exact bytes, which the reader takes instead (see
// progress.SplitName). Error messages are escaped (\xNN), not kept.
//
// The same decoders bound the arrays a request or response may hold,
// before anything is allocated for their elements: JSON needs as little
// as three bytes for an element that decodes into a 100-byte struct.

// Limits on the arrays of one decoded message, counted over every nesting
// level. Honest peers send at most 256 meta operations, one file per open
// and commit, and what fits one frame for the rest.
const (
	MaxReqItems   = 4096    // meta, files, commits; errs of a response
	MaxAdoptItems = 1 << 18 // adopt candidates; missing chunks
	maxHaveItems  = 1 << 21 // haves: files, their ranges, two ends each
	maxDoneItems  = 1 << 19 // done: files and their chunks
)

// errTooManyItems is a message whose arrays exceed a limit.
var ErrTooManyItems = errors.New("too many items")

// countItems counts the array elements in the JSON value b at every
// nesting level (b is valid JSON: encoding/json checks a whole message
// before it calls any decoder).
func countItems(b []byte) int {
	n := 0
	var stack []byte // open containers, '[' or '{'
	inStr, esc := false, false
	first := false // just after an opening '['
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if first && c != ']' {
			n++
		}
		first = false
		switch c {
		case '"':
			inStr = true
		case '[':
			stack = append(stack, '[')
			first = true
		case '{':
			stack = append(stack, '{')
		case ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			if len(stack) > 0 && stack[len(stack)-1] == '[' {
				n++
			}
		}
	}
	return n
}

// bounded decodes a JSON array into *p, refusing it before allocation
// when it holds more than max elements at any nesting level.
type bounded[T any] struct {
	p    *[]T
	max  int
	name string
}

func (b *bounded[T]) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*b.p = nil
		return nil
	}
	n := countItems(data)
	if n > b.max {
		return fmt.Errorf("%s: %w (%d, limit %d)", b.name, ErrTooManyItems, n, b.max)
	}
	*b.p = make([]T, 0, min(n, b.max))
	return json.Unmarshal(data, b.p)
}

// The messages with name fields without their methods, and their JSON
// codecs (see progress.NameCodec).
type (
	reqJSON      Req
	entryJSON    plan.Entry
	metaOpJSON   MetaOp
	fileSpecJSON FileSpec
	jobSpecJSON  JobSpec
	unitDirJSON  UnitDir
)

var (
	reqNames      = progress.NewNameCodec[reqJSON]("Path")
	entryNames    = progress.NewNameCodec[entryJSON]("Path", "Target")
	metaOpNames   = progress.NewNameCodec[metaOpJSON]("Path", "Target")
	fileSpecNames = progress.NewNameCodec[fileSpecJSON]("Path")
	jobSpecNames  = progress.NewNameCodec[jobSpecJSON]("SrcPath", "DstPath")
	unitDirNames  = progress.NewNameCodec[unitDirJSON]("Path")
)

// MarshalJSON writes the request with its path kept exactly.
func (r Req) MarshalJSON() ([]byte, error) { return reqNames.Marshal(reqJSON(r)) }

// UnmarshalJSON reads a request, its arrays bounded.
func (r *Req) UnmarshalJSON(b []byte) error {
	type plain Req
	w := struct {
		*plain
		Path    string              `json:"path"`
		PathB64 []byte              `json:"path_b64"`
		Meta    bounded[MetaOp]     `json:"meta"`
		Files   bounded[FileSpec]   `json:"files"`
		Commits bounded[CommitSpec] `json:"commits"`
		Adopt   bounded[AdoptChunk] `json:"adopt"`
	}{plain: (*plain)(r),
		Meta:    bounded[MetaOp]{&r.Meta, MaxReqItems, "meta"},
		Files:   bounded[FileSpec]{&r.Files, MaxReqItems, "files"},
		Commits: bounded[CommitSpec]{&r.Commits, MaxReqItems, "commits"},
		Adopt:   bounded[AdoptChunk]{&r.Adopt, MaxAdoptItems, "adopt"},
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Path = progress.JoinName(w.Path, w.PathB64)
	return nil
}

// MarshalJSON writes the response with its entry's names kept exactly
// and its messages escaped.
func (r Resp) MarshalJSON() ([]byte, error) {
	type plain Resp
	w := struct {
		plain
		Errs  []string   `json:"errs,omitempty"`
		Entry *wireEntry `json:"entry,omitempty"`
	}{plain: plain(r), Errs: r.Errs, Entry: (*wireEntry)(r.Entry)}
	w.Err = progress.EscapeInvalid(r.Err)
	copied := false
	for i, msg := range r.Errs {
		if m := progress.EscapeInvalid(msg); m != msg {
			if !copied {
				w.Errs, copied = append([]string(nil), r.Errs...), true
			}
			w.Errs[i] = m
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a response, its arrays bounded.
func (r *Resp) UnmarshalJSON(b []byte) error {
	type plain Resp
	w := struct {
		*plain
		Entry   *wireEntry            `json:"entry"`
		Errs    bounded[string]       `json:"errs"`
		Haves   bounded[[][2]int64]   `json:"haves"`
		Done    bounded[[]AdoptChunk] `json:"done"`
		Missing bounded[int64]        `json:"missing"`
		Leaves  bounded[ChunkLeaves]  `json:"leaves"`
	}{plain: (*plain)(r),
		Errs:    bounded[string]{&r.Errs, MaxReqItems, "errs"},
		Haves:   bounded[[][2]int64]{&r.Haves, maxHaveItems, "haves"},
		Done:    bounded[[]AdoptChunk]{&r.Done, maxDoneItems, "done"},
		Missing: bounded[int64]{&r.Missing, MaxAdoptItems, "missing"},
		Leaves:  bounded[ChunkLeaves]{&r.Leaves, MaxAdoptItems, "leaves"},
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Entry = (*plan.Entry)(w.Entry)
	return nil
}

// wireEntry is a plan.Entry in a response, its names kept exactly; the
// field names are plan.Entry's.
type wireEntry plan.Entry

func (e wireEntry) MarshalJSON() ([]byte, error) { return entryNames.Marshal(entryJSON(e)) }

func (e *wireEntry) UnmarshalJSON(b []byte) error { return entryNames.Unmarshal(b, (*entryJSON)(e)) }

// MarshalJSON writes the operation with its path and target kept exactly.
func (m MetaOp) MarshalJSON() ([]byte, error) { return metaOpNames.Marshal(metaOpJSON(m)) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *MetaOp) UnmarshalJSON(b []byte) error { return metaOpNames.Unmarshal(b, (*metaOpJSON)(m)) }

// MarshalJSON writes the announcement with its path kept exactly.
func (f FileSpec) MarshalJSON() ([]byte, error) { return fileSpecNames.Marshal(fileSpecJSON(f)) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (f *FileSpec) UnmarshalJSON(b []byte) error {
	return fileSpecNames.Unmarshal(b, (*fileSpecJSON)(f))
}

// MarshalJSON writes the job with its paths kept exactly.
func (j JobSpec) MarshalJSON() ([]byte, error) { return jobSpecNames.Marshal(jobSpecJSON(j)) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (j *JobSpec) UnmarshalJSON(b []byte) error { return jobSpecNames.Unmarshal(b, (*jobSpecJSON)(j)) }

// MarshalJSON writes the directory with its path kept exactly.
func (d UnitDir) MarshalJSON() ([]byte, error) { return unitDirNames.Marshal(unitDirJSON(d)) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *UnitDir) UnmarshalJSON(b []byte) error { return unitDirNames.Unmarshal(b, (*unitDirJSON)(d)) }
