package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/progress"
)

// fileLog is --log-file: logs and every event (JSON lines, the summary
// last) appended to a file, for cron runs whose output nobody watches.
type fileLog struct {
	mu sync.Mutex
	f  *os.File
}

func newFileLog(path string) (*fileLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, exitcode.Usagef("--log-file %s: %v", path, unwrapPathErr(err))
	}
	return &fileLog{f: f}, nil
}

func (l *fileLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *fileLog) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	l.Write(append(b, '\n'))
}

// Emit records an event (progress ticks excepted).
func (l *fileLog) Emit(e progress.Event) {
	if e.Event != progress.KindProgress {
		l.line(e)
	}
}

// Summary records the summary.
func (l *fileLog) Summary(s progress.Summary) { l.line(s) }

func (l *fileLog) logger(format string, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	var w io.Writer = l
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func (l *fileLog) Close() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("closing log file: %w", err)
	}
	return nil
}
