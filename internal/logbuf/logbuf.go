// Package logbuf keeps what a logger or a child process writes while it
// runs, safe to read meanwhile, for the tests that look into a log or show
// it when they fail.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer that keeps what is written to it, for concurrent
// writers and readers. The zero value keeps everything.
type Buffer struct {
	// Keep bounds what is kept: the first Keep bytes (0: no bound). What
	// comes after is dropped, and String says so.
	Keep int

	mu      sync.Mutex
	b       bytes.Buffer
	dropped bool
}

// Write keeps p, or the part of it that Keep leaves room for. It never
// fails.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := p
	if l.Keep > 0 && l.b.Len()+len(q) > l.Keep {
		q = q[:max(l.Keep-l.b.Len(), 0)]
		l.dropped = true
	}
	l.b.Write(q)
	return len(p), nil
}

// String is what was kept, followed by a line "[...]" if anything was
// dropped.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped {
		return l.b.String() + "\n[...]"
	}
	return l.b.String()
}
