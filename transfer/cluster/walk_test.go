package cluster

import (
	"testing"

	"github.com/xfer-io/xfer/plan"
)

func TestPrunes(t *testing.T) {
	tests := []struct {
		name   string
		rules  []string
		backup string
		dir    string
		want   bool
	}{
		{"no filter", nil, "", "a/b", false},
		{"anchored at the top", []string{"- /a"}, "", "a", true},
		{"anchored, deeper name", []string{"- /a"}, "", "x/a", false},
		{"unanchored", []string{"- b"}, "", "a/b", true},
		{"directory rule", []string{"- b/"}, "", "a/b", true},
		{"include first", []string{"+ /a", "- /*"}, "", "a", false},
		{"include first, other", []string{"+ /a", "- /*"}, "", "c", true},
		{"beneath an excluded directory", []string{"- /a"}, "", "a/b", true},
		{"the backup directory", nil, "a/bak", "a/bak", true},
		{"beneath the backup directory", nil, "a/bak", "a/bak/x", true},
		{"beside the backup directory", nil, "a/bak", "a/bak2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var flt *plan.Filter
			if tt.rules != nil {
				o := plan.FilterOptions{MinSize: -1, MaxSize: -1}
				for _, s := range tt.rules {
					r, err := plan.ParseRule(s)
					if err != nil {
						t.Fatal(err)
					}
					o.Rules = append(o.Rules, r)
				}
				var err error
				if flt, err = plan.NewFilter(o); err != nil {
					t.Fatal(err)
				}
			}
			if got := prunes(flt, tt.backup, tt.dir); got != tt.want {
				t.Errorf("prunes(%v, %q, %q) = %v, want %v", tt.rules, tt.backup, tt.dir, got, tt.want)
			}
		})
	}
}
