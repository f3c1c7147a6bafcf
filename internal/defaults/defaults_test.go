package defaults

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, 7}, {-3, 7}, {1, 1}, {9, 9}} {
		v := tc.in
		Positive(&v, 7)
		if v != tc.want {
			t.Errorf("Positive(%d, 7) = %d, want %d", tc.in, v, tc.want)
		}
	}
	d := time.Duration(0)
	Positive(&d, time.Second)
	if d != time.Second {
		t.Errorf("Positive(0s, 1s) = %v", d)
	}
}

func TestZero(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"", "full"}, {"none", "none"}} {
		v := tc.in
		Zero(&v, "full")
		if v != tc.want {
			t.Errorf("Zero(%q, full) = %q, want %q", tc.in, v, tc.want)
		}
	}
	n := -1
	Zero(&n, 5)
	if n != -1 {
		t.Errorf("Zero(-1, 5) = %d: only the zero value is unset", n)
	}
}

func TestLog(t *testing.T) {
	var l *slog.Logger
	Log(&l)
	if l == nil {
		t.Fatal("Log left a nil logger")
	}
	l.Info("discarded") // must not panic
	mine := slog.New(slog.NewTextHandler(io.Discard, nil))
	kept := mine
	Log(&kept)
	if kept != mine {
		t.Error("Log replaced a logger that was set")
	}
}
