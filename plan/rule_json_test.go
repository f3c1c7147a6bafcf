package plan

import (
	"encoding/json"
	"testing"
)

// TestRuleJSONKeepsBytes: rules travel inside job options as JSON; a
// pattern that is not UTF-8 must come back byte for byte, not as U+FFFD.
func TestRuleJSONKeepsBytes(t *testing.T) {
	for _, r := range []Rule{
		{Include: true, Pattern: "*.txt"},
		{Pattern: "d\xff/*"},
		{Pattern: "\xfe\xfd"},
		{Clear: true},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Rule
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got != r {
			t.Errorf("%q: round trip gave %q (JSON %s)", r.Pattern, got.Pattern, b)
		}
	}
}
