package validate

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The expressions the hand-written matchers replace, kept as their reference.
var (
	dnsLabelRE      = regexp.MustCompile(`^` + dnsLabelFmt + `$`)
	wildcardLabelRE = regexp.MustCompile(`^(?:\*|(?:\*|\*-)?` + dnsLabelFmt + `)$`)
	labelKeyRE      = regexp.MustCompile(`^(` + dnsLabelFmt + `(?:\.` + dnsLabelFmt + `)*/)?(` + qualifiedNameFmt + `)$`)
	labelValueRE    = regexp.MustCompile(`^(?:` + qualifiedNameFmt + `)?$`)
)

// labelKeyProblemByExpression is labelKeyProblem as it was written with labelKeyRE.
func labelKeyProblemByExpression(k string) string {
	m := labelKeyRE.FindStringSubmatch(k)
	switch {
	case k == "":
		return "is empty"
	case m == nil:
		return "is not a valid label key (an optional DNS prefix and '/', then letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
	case len(m[1]) > 0 && len(m[1])-1 > maxKeyPrefixLen:
		return fmt.Sprintf("has a prefix of %d characters (at most %d)", len(m[1])-1, maxKeyPrefixLen)
	case len(m[2]) > maxLabelLen:
		return fmt.Sprintf("has a name of %d characters (at most %d)", len(m[2]), maxLabelLen)
	}
	return ""
}

// labelsProblemBySplit is labelsProblem as it was written before it stopped allocating.
func labelsProblemBySplit(name string) string {
	parts := strings.Split(name, ".")
	last := parts[len(parts)-1]
	if _, err := strconv.Atoi(last); err == nil {
		return fmt.Sprintf("has an all-numeric top-level label %q", last)
	}
	for i, l := range parts {
		if i == len(parts)-1 && l == "" {
			return ""
		}
		if !(len(l) <= maxLabelLen && dnsLabelRE.MatchString(l)) {
			return labelProblem(l)
		}
	}
	return ""
}

// sameAsExpressions reports where the matchers and the expressions they replace disagree on s.
func sameAsExpressions(s string) error {
	if got, want := isDNSLabel(s), len(s) <= maxLabelLen && dnsLabelRE.MatchString(s); got != want {
		return fmt.Errorf("isDNSLabel(%q) = %v, expression says %v", s, got, want)
	}
	if got, want := isWildcardLabel(s), len(s) <= maxLabelLen && wildcardLabelRE.MatchString(s); got != want {
		return fmt.Errorf("isWildcardLabel(%q) = %v, expression says %v", s, got, want)
	}
	if got, want := labelsProblem(s), labelsProblemBySplit(s); got != want {
		return fmt.Errorf("labelsProblem(%q) = %q, before %q", s, got, want)
	}
	if got, want := labelKeyProblem(s), labelKeyProblemByExpression(s); got != want {
		return fmt.Errorf("labelKeyProblem(%q) = %q, expression says %q", s, got, want)
	}
	if got, want := validLabelValue(s), labelValueRE.MatchString(s); got != want {
		return fmt.Errorf("validLabelValue(%q) = %v, expression says %v", s, got, want)
	}
	return nil
}

func TestLabelMatchersAgreeWithTheirExpressions(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "a", "A", "0", "-", "a-", "-a", "a-b", "a--b", "*", "*a", "*-a", "**a", "*-", "*--a", "a*",
		"a.b", "a..b", ".a", "a.", "a.b.", "10.0.0.1", "a.123", "a.+1", "a.-1", "a.+-1", "a.00", "a.99999999999999999999",
		strings.Repeat("a", 63), strings.Repeat("a", 64), "*" + strings.Repeat("a", 62), "*-" + strings.Repeat("a", 62),
		"xn--bcher-kva.example", "ünï.code", "a_b.c", "svc0.a.example.com", "*.wild1.example.com",
		"app", "app.kubernetes.io/name", "a/b/c", "/a", "a/", "a./b", ".a/b", "a..b/c", "-a/b", "a-/b", "A_b/c_D", "a/_b", "a/b_",
		"a/b.c-d_e", "x/" + strings.Repeat("n", 64), strings.Repeat("p.", 127) + "p/n", strings.Repeat("p", 254) + "/n", "_", "a_", "1.0"}
	for _, s := range inputs {
		t.Run(fmt.Sprintf("reads %q as the expressions do", s), func(t *testing.T) {
			t.Parallel()
			if err := sameAsExpressions(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func FuzzLabelMatchers(f *testing.F) {
	for _, s := range []string{"a-b.c", "*-x.y", "1.2.3.4", "a..b.", "+5", "app.kubernetes.io/name", "a/b_c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := sameAsExpressions(s); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAFieldPathIsTheListTheIndexAndTheSuffix(t *testing.T) {
	t.Parallel()
	for _, list := range []string{"spec.hosts", "spec.ports", "spec.addresses", "spec.endpoints", "spec.http"} {
		for i := -1; i < 12; i++ {
			for _, suffix := range []string{"", ".name"} {
				if got, want := at(list, i, suffix), fmt.Sprintf("%s[%d]%s", list, i, suffix); got != want {
					t.Errorf("at(%q, %d, %q) = %q, want %q", list, i, suffix, got, want)
				}
			}
		}
	}
}

func TestIsIPAgreesWithParseAddr(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", ".", "1", "1.2.3.4", "01.2.3.4", "1.2.3.4.5", "256.1.1.1", "::", "::1", "fe80::1%eth0", "::ffff:1.2.3.4",
		"1.2.3.4%eth0", "api.example.com", "a:b", "1.2.3.x", "abcd::", "[::1]", "1e.2.3.4", "١.2.3.4", "1.2.3.4 "} {
		_, err := netip.ParseAddr(s)
		if got, want := isIP(s), err == nil; got != want {
			t.Errorf("isIP(%q) = %v, ParseAddr says %v", s, got, want)
		}
	}
}
