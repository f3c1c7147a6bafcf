package transfer

import (
	"errors"
	"testing"
)

// TestPushPolicy: --push-allow entries parse, bad ones are refused, and
// each connection address is vetted against them.
func TestPushPolicy(t *testing.T) {
	for _, bad := range [][]string{{"nonsense"}, {"10.0.0.0/33"}, {"host:0"}, {"host:x"}, {"none", "10.0.0.0/8"}, {":7878"}} {
		if _, err := ParsePushAllow(bad); err == nil {
			t.Errorf("ParsePushAllow(%q) accepted", bad)
		}
	}
	p, err := ParsePushAllow([]string{"10.0.0.0/8", "192.168.1.5", "127.0.0.1:7878", "Backup.Example:7878", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		job, conn string
		ok        bool
	}{
		{"10.1.2.3:1", "10.1.2.3:1", true},
		{"11.0.0.1:7878", "11.0.0.1:7878", false},
		{"192.168.1.5:9", "192.168.1.5:9", true},
		{"127.0.0.1:7878", "127.0.0.1:7878", true},
		{"127.0.0.1:7879", "127.0.0.1:7879", false},
		{"backup.example:7878", "203.0.113.9:7878", true}, // named as allowed: any address it resolves to
		{"other.example:7878", "10.0.0.9:7878", true},     // resolves into an allowed range
		{"other.example:7878", "203.0.113.9:7878", false}, // resolves outside
		{"[::1]:5", "[::1]:5", true},
		{"[::ffff:10.0.0.1]:5", "[::ffff:10.0.0.1]:5", true},
	}
	for _, tt := range tests {
		check, err := p.vet(tt.job)
		if err != nil {
			t.Fatalf("vet %s: %v", tt.job, err)
		}
		ok := check == nil || check("tcp", tt.conn, nil) == nil
		if ok != tt.ok {
			t.Errorf("job %s connecting to %s: allowed %v, want %v", tt.job, tt.conn, ok, tt.ok)
		}
	}
	none, _ := ParsePushAllow([]string{"none"})
	if _, err := none.vet("127.0.0.1:7878"); err == nil {
		t.Error("--push-allow none allowed a push")
	}
	var any *PushPolicy
	if check, err := any.vet("127.0.0.1:7878"); check != nil || err != nil {
		t.Error("no --push-allow restricted a push")
	}
	if check, _ := p.vet("11.0.0.1:7878"); !errors.Is(check("tcp", "11.0.0.1:7878", nil), errPushRefused) {
		t.Error("a refusal is not errPushRefused")
	}
}
