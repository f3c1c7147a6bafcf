package sshconn

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "ssh", want: []string{"ssh"}},
		{in: "  ssh -i key  -o A=b ", want: []string{"ssh", "-i", "key", "-o", "A=b"}},
		{in: `ssh -i "my key" -o 'Proxy Command=x y'`, want: []string{"ssh", "-i", "my key", "-o", "Proxy Command=x y"}},
		{in: `ssh -i my\ key "a\"b" 'c\d'`, want: []string{"ssh", "-i", "my key", `a"b`, `c\d`}},
		{in: `ssh ""`, want: []string{"ssh", ""}},
		{in: `ssh 'x`, err: "unbalanced"},
		{in: "  ", err: "empty"},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("SplitCommand(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/xfer": "/usr/bin/xfer",
		"~/data":        "'~/data'",
		"a b":           "'a b'",
		"it's":          `'it'\''s'`,
		"":              "''",
		"$(rm -rf x)":   "'$(rm -rf x)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
