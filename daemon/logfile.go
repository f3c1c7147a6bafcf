package daemon

import (
	"fmt"
	"os"
	"sync"
)

// LogFile is an append-only log file that can be reopened (on SIGHUP), so
// that logrotate can move it aside and the daemon goes on in a new file of
// the same name.
type LogFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenLogFile opens (creating if needed, mode 0640) the log file at path.
func OpenLogFile(path string) (*LogFile, error) {
	l := &LogFile{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reopen closes the file and opens path again.
func (l *LogFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write appends p (one log record) to the file.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
