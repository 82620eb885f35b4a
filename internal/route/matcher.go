package route

import (
	"fmt"
	"regexp"
	"regexp/syntax"

	networking "istio.io/api/networking/v1alpha3"
)

type matchKind uint8

const (
	matchPresent matchKind = iota // the value only needs to exist
	matchExact
	matchPrefix
	matchRegex
)

// Matcher is a compiled Istio StringMatch: exact, prefix or an RE2 regex matched against the whole
// value, as Envoy's safe_regex does.
type Matcher struct {
	kind matchKind
	s    string
	re   *regexp.Regexp
	// lit is a regex's literal prefix, which every matching value starts with: checking it first
	// spares running the regex on most values that fail. litAll says the regex is that literal.
	lit    string
	litAll bool
	// fold compares ASCII case-insensitively (ignoreUriCase); Envoy ignores it for regexes.
	fold bool
}

// compileMatch turns a StringMatch into a Matcher; a nil or empty one matches any present value.
func compileMatch(m *networking.StringMatch, fold bool) (Matcher, error) {
	if m == nil {
		return Matcher{kind: matchPresent}, nil
	}
	switch v := m.MatchType.(type) {
	case *networking.StringMatch_Exact:
		return Matcher{kind: matchExact, s: v.Exact, fold: fold}, nil
	case *networking.StringMatch_Prefix:
		if v.Prefix == "" {
			return Matcher{kind: matchPresent}, nil
		}
		return Matcher{kind: matchPrefix, s: v.Prefix, fold: fold}, nil
	case *networking.StringMatch_Regex:
		re, bare, err := compileAnchored(v.Regex)
		if err != nil {
			return Matcher{}, err
		}
		lit, all := bare.LiteralPrefix()
		return Matcher{kind: matchRegex, s: v.Regex, re: re, lit: lit, litAll: all}, nil
	}
	return Matcher{kind: matchPresent}, nil
}

// compileRegex compiles an RE2 expression anchored at both ends, since Envoy matches the whole value.
func compileRegex(expr string) (*regexp.Regexp, error) {
	re, _, err := compileAnchored(expr)
	return re, err
}

// compileAnchored compiles expr on its own, then anchored. The anchors wrap the expression's
// parsed form, not its text: "a)|(b" would balance inside a textual ^(?:...)$ (and match any
// value starting with a), and a \Q left open would quote the wrapper's closing half.
func compileAnchored(expr string) (anchored, bare *regexp.Regexp, err error) {
	bare, err = regexp.Compile(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	parsed, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	anchored, err = regexp.Compile(`^(?:` + parsed.String() + `)$`)
	if err != nil {
		return nil, nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return anchored, bare, nil
}

// CompileRegex reports whether expr is a valid RE2 expression as Envoy would accept it.
func CompileRegex(expr string) error {
	_, err := compileRegex(expr)
	return err
}

// Match reports whether b satisfies the matcher.
func (m *Matcher) Match(b []byte) bool {
	switch m.kind {
	case matchExact:
		if m.fold {
			return len(b) == len(m.s) && foldHasPrefix(b, m.s)
		}
		return string(b) == m.s
	case matchPrefix:
		if m.fold {
			return foldHasPrefix(b, m.s)
		}
		return len(b) >= len(m.s) && string(b[:len(m.s)]) == m.s
	case matchRegex:
		if m.litAll {
			return string(b) == m.lit
		}
		if len(b) < len(m.lit) || string(b[:len(m.lit)]) != m.lit {
			return false
		}
		return m.re.Match(b)
	}
	return true
}

// MatchString is Match for a string value.
func (m *Matcher) MatchString(s string) bool {
	switch m.kind {
	case matchExact:
		if m.fold {
			return len(s) == len(m.s) && foldHasPrefixString(s, m.s)
		}
		return s == m.s
	case matchPrefix:
		if m.fold {
			return foldHasPrefixString(s, m.s)
		}
		return len(s) >= len(m.s) && s[:len(m.s)] == m.s
	case matchRegex:
		if m.litAll {
			return s == m.lit
		}
		if len(s) < len(m.lit) || s[:len(m.lit)] != m.lit {
			return false
		}
		return m.re.MatchString(s)
	}
	return true
}

// String describes the matcher for explain: exact "x", prefix "x", regex "x" or present.
func (m *Matcher) String() string {
	switch m.kind {
	case matchExact:
		return fmt.Sprintf("exact %q", m.s)
	case matchPrefix:
		return fmt.Sprintf("prefix %q", m.s)
	case matchRegex:
		return fmt.Sprintf("regex %q", m.s)
	}
	return "present"
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func foldHasPrefix(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lowerASCII(b[i]) != lowerASCII(p[i]) {
			return false
		}
	}
	return true
}

func foldHasPrefixString(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if lowerASCII(s[i]) != lowerASCII(p[i]) {
			return false
		}
	}
	return true
}
