package route

import (
	"testing"

	networking "istio.io/api/networking/v1alpha3"
)

// The regex is anchored by wrapping it in ^(?: and )$, but its literal prefix was taken from the
// bare expression with MustCompile: an expression whose parentheses only balance inside the
// wrapper compiled anchored and then panicked. Such an expression is no valid RE2 on its own, and
// the wrapper must not lend it meaning; \Q quoting the wrapper's closing half is the mirror case.
func TestCompileMatchRefusesARegexThatOnlyTheAnchorsBalance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		regex   string
		wantErr bool
	}{
		{name: "refuses a regex that closes the anchoring group", regex: "a)|(b", wantErr: true},
		{name: "refuses a regex that closes the group and matches anything", regex: "a)|.*|(b", wantErr: true},
		{name: "accepts a \\Q quote left open, quoting to the end as RE2 does", regex: `\Qa.b`},
		{name: "accepts an ordinary regex", regex: "/api/v[0-9]+/.*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := compileMatch(&networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: tt.regex}}, false)
			if (err != nil) != tt.wantErr {
				t.Fatalf("compileMatch(%q) error = %v, want error %v", tt.regex, err, tt.wantErr)
			}
			if err == nil && tt.regex == `\Qa.b` && (!m.MatchString("a.b") || m.MatchString("axb")) {
				t.Errorf("%q should match exactly the literal a.b", tt.regex)
			}
		})
	}
}
