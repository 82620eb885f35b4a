package sniff

import (
	"bytes"
	"net/netip"
)

// h2Preface is the client connection preface of HTTP/2 with prior knowledge (RFC 9113 §3.4).
var h2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

const (
	// maxMethodLen bounds the request method so that a binary protocol made of token bytes is not read
	// up to the sniff limit; the longest registered method (VERSION-CONTROL) has 15 bytes.
	maxMethodLen = 24
	httpVersion  = "HTTP/1."
	maxHostLen   = 255
)

// sniffHTTP classifies b as HTTP/1.x, HTTP/2 prior knowledge or neither, and for HTTP/1.x returns the
// host the request is for: the target's authority in absolute or authority form, else the Host header,
// port stripped and lowercased, or "" when it is missing, repeated or not a valid host.
//
// done reports whether more bytes could change the answer; when it is false, kind and host are the best
// answer so far, which is what a caller that cannot read more (limit, timeout, EOF) should use. Once done
// is true, appending bytes to b does not change the answer.
func sniffHTTP(b []byte) (kind Kind, host string, done bool) {
	if len(b) == 0 {
		return TCP, "", false
	}
	if n := min(len(b), len(h2Preface)); bytes.Equal(b[:n], h2Preface[:n]) {
		if n < len(h2Preface) {
			return TCP, "", false
		}
		return HTTP2, "", true
	}
	i, method, target, ok, done := requestLine(b)
	if !ok {
		return TCP, "", done
	}
	if host, ok := targetHost(method, target); ok {
		// RFC 9112 §3.2.2: a server MUST ignore the Host header when the target has an authority.
		return HTTP, host, true
	}
	hosts := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			// Only complete lines count, so a Host header cut short is never taken for a shorter name.
			return HTTP, host, false
		}
		line := bytes.TrimSuffix(b[i:i+j], []byte("\r"))
		i += j + 1
		if len(line) == 0 {
			return HTTP, host, true
		}
		if line[0] == ' ' || line[0] == '\t' {
			// An obsolete line folding continues the previous field; it cannot start a Host header.
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			// A server answers 400 to a broken header line, so there is no host to route on.
			return HTTP, "", true
		}
		if !asciiEqualFold(line[:colon], "host") {
			continue
		}
		hosts++
		if hosts > 1 {
			// RFC 9112 §3.2: two Host headers make the request invalid, and routing on either one could
			// disagree with the server that picks the other.
			return HTTP, "", true
		}
		host = hostFromAuthority(bytes.Trim(line[colon+1:], " \t"))
	}
}

// requestLine parses an HTTP/1.x request line at the start of b and returns the offset just past it.
// ok is false when b holds no complete request line; done then says whether b can never start one.
func requestLine(b []byte) (next int, method, target []byte, ok, done bool) {
	i := 0
	for i < len(b) && isTokenByte(b[i]) {
		i++
		if i > maxMethodLen {
			return 0, nil, nil, false, true
		}
	}
	if i == len(b) {
		return 0, nil, nil, false, false
	}
	if i == 0 || b[i] != ' ' {
		return 0, nil, nil, false, true
	}
	method = b[:i]
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return 0, nil, nil, false, false
	}
	if i == start || b[i] != ' ' {
		return 0, nil, nil, false, true
	}
	target = b[start:i]
	i++
	for j := 0; j < len(httpVersion); j, i = j+1, i+1 {
		if i == len(b) {
			return 0, nil, nil, false, false
		}
		if b[i] != httpVersion[j] {
			return 0, nil, nil, false, true
		}
	}
	if i == len(b) {
		return 0, nil, nil, false, false
	}
	if !isDigit(b[i]) {
		return 0, nil, nil, false, true
	}
	i++
	if i < len(b) && b[i] == '\r' {
		i++
	}
	if i == len(b) {
		return 0, nil, nil, false, false
	}
	if b[i] != '\n' {
		return 0, nil, nil, false, true
	}
	return i + 1, method, target, true, true
}

// targetHost returns the host of a request target in authority form (CONNECT) or absolute form; ok is
// false for origin and asterisk form, where the Host header names the host.
func targetHost(method, target []byte) (host string, ok bool) {
	if string(method) == "CONNECT" {
		return hostFromAuthority(target), true
	}
	if target[0] == '/' || string(target) == "*" {
		return "", false
	}
	// Absolute form: scheme ":" hier-part (RFC 3986 §3); the scheme starts with a letter.
	colon := bytes.IndexByte(target, ':')
	if colon <= 0 || !isAlpha(target[0]) {
		return "", true
	}
	for _, ch := range target[1:colon] {
		if !isAlpha(ch) && !isDigit(ch) && ch != '+' && ch != '-' && ch != '.' {
			return "", true
		}
	}
	rest, ok := bytes.CutPrefix(target[colon+1:], []byte("//"))
	if !ok {
		return "", true
	}
	if end := bytes.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end]
	}
	if at := bytes.LastIndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	return hostFromAuthority(rest), true
}

// hostFromAuthority returns the host of host[:port] or [v6]:port, lowercased, or "" when it is not a
// DNS name, an IPv4 address or a bracketed IPv6 address.
func hostFromAuthority(a []byte) string {
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !validPort(a[end+1:]) {
			return ""
		}
		addr, err := netip.ParseAddr(string(a[1:end]))
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return ""
		}
		return addr.String()
	}
	if colon := bytes.LastIndexByte(a, ':'); colon >= 0 {
		if !validPort(a[colon:]) {
			return ""
		}
		a = a[:colon]
	}
	if len(a) == 0 || len(a) > maxHostLen {
		return ""
	}
	for _, ch := range a {
		if !isAlpha(ch) && !isDigit(ch) && ch != '-' && ch != '.' && ch != '_' {
			return ""
		}
	}
	return lowerASCII(a)
}

// validPort reports whether p is empty or ":" followed by at most five digits (RFC 3986 allows an
// empty port after the colon).
func validPort(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if p[0] != ':' || len(p) > 6 {
		return false
	}
	for _, ch := range p[1:] {
		if !isDigit(ch) {
			return false
		}
	}
	return true
}

func isToken(b []byte) bool {
	for _, ch := range b {
		if !isTokenByte(ch) {
			return false
		}
	}
	return len(b) > 0
}

// isTokenByte reports whether ch is a tchar (RFC 9110 §5.6.2).
func isTokenByte(ch byte) bool {
	if isAlpha(ch) || isDigit(ch) {
		return true
	}
	switch ch {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isAlpha(ch byte) bool { return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' }

func isDigit(ch byte) bool { return '0' <= ch && ch <= '9' }

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}
