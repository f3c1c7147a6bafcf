package plan

import (
	"encoding/json"
	"testing"
)

// TestRuleJSONKeepsBytes: rules travel inside job options as JSON; a
// pattern that is not UTF-8 must come back byte for byte, not as U+FFFD,
// and its JSON (read by peers of other builds) must not change.
func TestRuleJSONKeepsBytes(t *testing.T) {
	for _, tc := range []struct {
		r    Rule
		want string
	}{
		{Rule{Include: true, Pattern: "*.txt"}, `{"include":true,"pattern":"*.txt"}`},
		{Rule{Pattern: "d\xff/*"}, `{"pattern":"d\\xff/*","pattern_b64":"ZP8vKg=="}`},
		{Rule{Pattern: "\xfe\xfd"}, `{"pattern":"\\xfe\\xfd","pattern_b64":"/v0="}`},
		{Rule{Clear: true}, `{"clear":true}`},
	} {
		r := tc.r
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%q: JSON %s, want %s", r.Pattern, b, tc.want)
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
