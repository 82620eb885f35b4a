package validate

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// The syntax below is Istio's (pkg/config/labels): a DNS-1123 label accepts upper case too, a
// wildcard label may start with "*" or "*-", and label keys and values follow Kubernetes.
const (
	dnsLabelFmt      = `[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?`
	qualifiedNameFmt = `(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
	maxLabelLen      = 63
	maxHostLen       = 255
	maxKeyPrefixLen  = 253
	unixPrefix       = "unix://"
)

// isDNSLabel reports whether s is one DNS-1123 label of at most 63 characters: dnsLabelFmt,
// matched by hand because every host of every entry is checked label by label (names_test.go
// holds it to the expression).
func isDNSLabel(s string) bool {
	if s == "" || len(s) > maxLabelLen || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isWildcardLabel is isDNSLabel that also accepts "*" and a leading "*" or "*-" (Istio's first-label
// rule): wildcardLabelRE, matched by hand.
func isWildcardLabel(s string) bool {
	if len(s) > maxLabelLen {
		return false
	}
	if s == "*" || isDNSLabel(s) {
		return true
	}
	rest, ok := strings.CutPrefix(s, "*")
	if !ok {
		return false
	}
	if isDNSLabel(rest) {
		return true
	}
	rest, ok = strings.CutPrefix(rest, "-")
	return ok && isDNSLabel(rest)
}

// allNumeric reports whether strconv.Atoi reads s, without the error it allocates for the
// names that are not numbers, which are nearly all.
func allNumeric(s string) bool {
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return false
	}
	_, err := strconv.Atoi(s)
	return err == nil
}

// hostProblem explains why host is not a valid DNS name, or returns "" when it is. With wildcard set it
// follows Istio's ValidateWildcardDomain (a wildcard is allowed in the first label only); without, it
// follows ValidateFQDN. Like Istio, a trailing dot is accepted and an all-numeric last label is not,
// which is what rejects IPv4 addresses.
func hostProblem(host string, wildcard bool) string {
	if len(host) > maxHostLen {
		return fmt.Sprintf("is %d characters long (a DNS name has at most %d)", len(host), maxHostLen)
	}
	if host == "" {
		return "is empty"
	}
	if isIP(host) {
		return "is an IP address, not a DNS name"
	}
	rest := host
	if wildcard {
		first, tail, more := strings.Cut(host, ".")
		if !isWildcardLabel(first) {
			return labelProblem(first)
		}
		if !more {
			return ""
		}
		rest = tail
	}
	return labelsProblem(rest)
}

// labelsProblem checks dot-separated DNS labels the way Istio's ValidateDNS1123Labels does.
func labelsProblem(name string) string {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if allNumeric(last) {
		return fmt.Sprintf("has an all-numeric top-level label %q", last)
	}
	for rest := name; ; {
		l, tail, more := strings.Cut(rest, ".")
		if !more && l == "" {
			return "" // a trailing dot, as in "istio.io.", is allowed
		}
		if !isDNSLabel(l) {
			return labelProblem(l)
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

func labelProblem(l string) string {
	switch {
	case l == "":
		return "has an empty label (a leading dot or two dots in a row)"
	case len(l) > maxLabelLen:
		return fmt.Sprintf("has a label of %d characters (at most %d)", len(l), maxLabelLen)
	case strings.Contains(l, "*"):
		return fmt.Sprintf("has a wildcard in label %q; a wildcard is allowed only at the start of the first label, as in \"*.example.com\"", l)
	default:
		return fmt.Sprintf("has an invalid label %q (letters, digits and '-', starting and ending with a letter or digit)", l)
	}
}

// isPartialWildcard reports a host whose wildcard is not a whole leading label, like "*foo.com".
func isPartialWildcard(host string) bool {
	return strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.")
}

// labelKeyProblem explains why k is not a Kubernetes label key ("prefix/name"), or returns "".
// Matched by hand, as every endpoint's labels are checked (names_fast_test.go holds it to the
// expression it replaces, labelKeyRE).
func labelKeyProblem(k string) string {
	prefix, name, slash := strings.Cut(k, "/")
	if !slash {
		prefix, name = "", k
	}
	switch {
	case k == "":
		return "is empty"
	case slash && !isLabelPrefix(prefix), !isQualifiedName(name):
		return "is not a valid label key (an optional DNS prefix and '/', then letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
	case len(prefix) > maxKeyPrefixLen:
		return fmt.Sprintf("has a prefix of %d characters (at most %d)", len(prefix), maxKeyPrefixLen)
	case len(name) > maxLabelLen:
		return fmt.Sprintf("has a name of %d characters (at most %d)", len(name), maxLabelLen)
	}
	return ""
}

// isLabelPrefix reports whether s is dnsLabelFmt labels joined by dots, of any length.
func isLabelPrefix(s string) bool {
	for rest := s; ; {
		l, tail, more := strings.Cut(rest, ".")
		if l == "" || !isAlnum(l[0]) || !isAlnum(l[len(l)-1]) {
			return false
		}
		for i := 1; i < len(l)-1; i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return false
			}
		}
		if !more {
			return true
		}
		rest = tail
	}
}

// isQualifiedName reports whether s matches qualifiedNameFmt: letters and digits at both ends,
// and '-', '_' or '.' besides them between.
func isQualifiedName(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// validLabelValue reports whether v is a Kubernetes label value. Istio checks the syntax only, not
// Kubernetes' 63-character limit, and so do we.
func validLabelValue(v string) bool { return v == "" || isQualifiedName(v) }

// addressProblem explains why addr is neither an IP address nor a CIDR block, or returns "". A string
// with exactly one "/" is read as CIDR, anything else as an address, as Istio's ValidateIPSubnet does.
func addressProblem(addr string) string {
	if strings.HasPrefix(addr, unixPrefix) {
		return "is a unix domain socket; sockets go in spec.endpoints, addresses must be IPs or CIDR blocks"
	}
	if strings.Count(addr, "/") == 1 {
		if _, err := netip.ParsePrefix(addr); err != nil {
			return "is not a valid CIDR block"
		}
		return ""
	}
	if _, err := netip.ParseAddr(addr); err != nil {
		return "is not a valid IP address or CIDR block"
	}
	return ""
}

// isIP reports whether s is an IPv4 or IPv6 address (a zone is allowed, as in Istio).
func isIP(s string) bool {
	if !mayBeIP(s) {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// mayBeIP is false for a string ParseAddr would refuse for want of a colon or of only digits and
// dots, as every host name is: ParseAddr allocates its error, and each ServiceEntry host is
// asked, two or three times.
func mayBeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// unixProblem explains why the part of a "unix://" address after the scheme is not a socket name:
// it must be an absolute file path or an abstract name starting with "@".
func unixProblem(name string) string {
	switch {
	case name == "":
		return "has no socket path"
	case strings.HasPrefix(name, "@"):
		return ""
	case !path.IsAbs(name):
		return "is not an absolute path; use unix:///absolute/path or unix://@abstract-name"
	case strings.HasSuffix(name, "/"):
		return "ends in '/', which names a directory, not a socket"
	}
	return ""
}
