package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var metricsRE = regexp.MustCompile(`metrics on (http://\S+)/metrics`)

// TestServeMetrics: `xfer serve --metrics-listen` exports what it moved
// and answers /healthz.
func TestServeMetrics(t *testing.T) {
	s := startServer(t, t.TempDir(), "--metrics-listen", "127.0.0.1:0")
	var base string
	for i := 0; i < 50 && base == ""; i++ {
		if m := metricsRE.FindStringSubmatch(s.logs.String()); m != nil {
			base = m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if base == "" {
		t.Fatalf("no metrics address in:\n%s", s.logs)
	}
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "big.bin"), 6<<20, 3)
	must(t, os.WriteFile(filepath.Join(src, "small"), []byte("s"), 0o644))
	if r := xfer(t, "copy", src, s.url("d"), "--chunk-size", "1M"); r.code != 0 {
		t.Fatal(r)
	}
	get := func(p string) (int, string) {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	_, body := get("/metrics")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`xfer_bytes_total\{direction="received",transport="[a-z-]+"\} 6.291457e\+06`),
		regexp.MustCompile(`xfer_files_total\{direction="received",transport="[a-z-]+"\} 2`),
		regexp.MustCompile(`xfer_active_sessions 0`),
	} {
		if !want.MatchString(body) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}
