package protoprobe

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	cases := []struct {
		name  string
		entry *Entry // nil: nothing stored
		file  string // raw file content instead, when set
		want  string // proto Get returns, "" for a miss
	}{
		{"empty", nil, "", ""},
		{"fresh", &Entry{Proto: "tcp-zc", MeasuredAt: at(-time.Hour)}, "", "tcp-zc"},
		{"expired", &Entry{Proto: "tcp-zc", MeasuredAt: at(-TTL - time.Minute)}, "", ""},
		{"bad time", &Entry{Proto: "tcp", MeasuredAt: "yesterday"}, "", ""},
		{"corrupt file", nil, "{not json", ""},
		{"other version", nil, `{"version":7,"entries":{"k":{"proto":"tcp","measured_at":"` + at(0) + `"}}}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "proto-probe.json")
			ca := NewCache(path)
			ca.now = func() time.Time { return now }
			if c.file != "" {
				os.MkdirAll(filepath.Dir(path), 0o700)
				os.WriteFile(path, []byte(c.file), 0o600)
			}
			if c.entry != nil {
				ca.Put("k", *c.entry)
			}
			e, ok := ca.Get("k")
			if got := map[bool]string{true: e.Proto}[ok]; got != c.want {
				t.Errorf("Get = %q, %v; want %q", e.Proto, ok, c.want)
			}
			ca.Drop("k")
			if _, ok := ca.Get("k"); ok {
				t.Errorf("entry still there after Drop")
			}
		})
	}
	var nilCache *Cache
	nilCache.Put("k", Entry{Proto: "tcp"})
	if _, ok := nilCache.Get("k"); ok {
		t.Errorf("a nil cache returned an entry")
	}
}
