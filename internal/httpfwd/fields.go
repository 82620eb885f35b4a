package httpfwd

import (
	"bytes"
	"encoding/binary"
	"iter"
	"net/http"
)

// This file holds field syntax: token tables, case folding and list parsing (as net/textproto
// does for net/http).

// fieldKind names the header fields the engine acts on; all others are forwarded untouched.
type fieldKind uint8

const (
	kindOther fieldKind = iota
	kindHost
	kindContentLength
	kindTransferEncoding
	kindExpect
	kindRequestID
	kindVia
	// The kinds from kindConnection to kindProxyAuthenticate are hop-by-hop (RFC 9110 §7.6.1)
	// and are never forwarded as received.
	kindConnection
	kindProxyConnection
	kindKeepAlive
	kindTE
	kindTrailer
	kindUpgrade
	kindProxyAuthorization
	kindProxyAuthenticate
)

func (k fieldKind) hopByHop() bool { return k >= kindConnection }

// classify maps a field name to its kind without allocating; names were checked to be tokens.
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return kindTE
		}
	case 3:
		if equalFold(name, "via") {
			return kindVia
		}
	case 4:
		if equalFold(name, "host") {
			return kindHost
		}
	case 6:
		if equalFold(name, "expect") {
			return kindExpect
		}
	case 7:
		if equalFold(name, "upgrade") {
			return kindUpgrade
		}
		if equalFold(name, "trailer") {
			return kindTrailer
		}
	case 10:
		if equalFold(name, "connection") {
			return kindConnection
		}
		if equalFold(name, "keep-alive") {
			return kindKeepAlive
		}
	case 12:
		if equalFold(name, "x-request-id") {
			return kindRequestID
		}
	case 14:
		if equalFold(name, "content-length") {
			return kindContentLength
		}
	case 16:
		if equalFold(name, "proxy-connection") {
			return kindProxyConnection
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return kindTransferEncoding
		}
	case 18:
		if equalFold(name, "proxy-authenticate") {
			return kindProxyAuthenticate
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return kindProxyAuthorization
		}
	}
	return kindOther
}

// lower folds one ASCII byte to lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// equalFoldBytes reports whether a and b are equal ignoring ASCII case.
func equalFoldBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// isToken holds the tchar set of RFC 9110 §5.6.2.
var isToken = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validValue reports whether a field value holds only VCHAR, obs-text, SP and HTAB (RFC 9110
// §5.5): control characters, CR and NUL above all, are refused rather than passed on. Eight
// bytes are checked at a time, since every value of every message goes through here.
func validValue(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		// High bit set in a byte of either term marks a byte < 0x20 or == 0x7f (for
		// bytes < 0x80; obs-text bytes are excluded by &^x).
		if ((x-lo*0x20)|((x^lo*0x7f)-lo))&^x&hi != 0 {
			for _, c := range b[:8] {
				if c < ' ' && c != '\t' || c == 0x7f {
					return false
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// span is a half-open byte range inside a head buffer.
type span struct{ start, end int }

// field is one header field line; name and value are ranges of the head buffer.
type field struct {
	name, value span
	kind        fieldKind
	listed      bool // named by the Connection field, so hop-by-hop
}

func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// codingName returns the name of a transfer coding list element, without its parameters.
func codingName(item []byte) []byte {
	if i := bytes.IndexByte(item, ';'); i >= 0 {
		item = bytes.TrimRight(item[:i], " \t")
	}
	return item
}

// isTokenBytes reports whether b is a non-empty token.
func isTokenBytes(b []byte) bool {
	for _, c := range b {
		if !isToken[c] {
			return false
		}
	}
	return len(b) > 0
}

// bareCodings reports a list of coding names without parameters or empty elements, such as
// "gzip, chunked": codings the engine does not implement rather than a malformed field.
func bareCodings(v []byte) bool {
	n := 0
	for s := range listItems(v) {
		if !isTokenBytes(v[s.start:s.end]) {
			return false
		}
		n++
	}
	return n == bytes.Count(v, []byte{','})+1
}

// listItems yields the non-empty elements of a comma-separated field value, trimmed of OWS.
func listItems(v []byte) iter.Seq[span] {
	return func(yield func(span) bool) {
		start := 0
		for start <= len(v) {
			end := bytes.IndexByte(v[start:], ',')
			if end < 0 {
				end = len(v)
			} else {
				end += start
			}
			s, e := start, end
			for s < e && (v[s] == ' ' || v[s] == '\t') {
				s++
			}
			for e > s && (v[e-1] == ' ' || v[e-1] == '\t') {
				e--
			}
			if s < e && !yield(span{s, e}) {
				return
			}
			start = end + 1
		}
	}
}

// parseLength parses a Content-Length value: 1 to 18 digits, nothing else.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func validName(s string) bool {
	for i := range len(s) {
		if !isToken[s[i]] {
			return false
		}
	}
	return s != ""
}

// quotedString consumes the quoted-string at b[*i] (RFC 9110 §5.6.4), reporting whether it is
// well-formed and closed.
func quotedString(b []byte, i *int) bool {
	for j := *i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			*i = j + 1
			return true
		case c == '\\':
			j++
			if j == len(b) || b[j] < ' ' && b[j] != '\t' || b[j] == 0x7f {
				return false
			}
		case c < ' ' && c != '\t' || c == 0x7f:
			return false
		}
	}
	return false
}

// trailerForbidden lists, in lower case, the fields dropped from a trailer section rather than
// forwarded (RFC 9110 §6.5.1): a recipient that merged them into the header section would
// have its framing (Content-Length, Transfer-Encoding, Trailer), routing (Host), connection
// handling (the hop-by-hop fields), request modifiers (Expect, Range, TE, the conditionals,
// Max-Forwards, Cache-Control, Pragma), authentication (Authorization, WWW-Authenticate, their
// Proxy- forms, Cookie, Set-Cookie), response control (Age, Date, Expires, Location,
// Retry-After, Vary) or content handling (Content-Type, Content-Encoding, Content-Range)
// changed after the fact. This is net/http's list of bad trailers, widened to what the RFC
// names; x-request-id is kept out too, as the one sent upstream is in the header section.
var trailerForbidden = map[string]struct{}{
	"age": {}, "authorization": {}, "cache-control": {}, "connection": {},
	"content-encoding": {}, "content-length": {}, "content-range": {}, "content-type": {},
	"cookie": {}, "date": {}, "expect": {}, "expires": {}, "host": {},
	"if-match": {}, "if-modified-since": {}, "if-none-match": {}, "if-range": {},
	"if-unmodified-since": {}, "keep-alive": {}, "location": {}, "max-forwards": {},
	"pragma": {}, "proxy-authenticate": {}, "proxy-authorization": {}, "proxy-connection": {},
	"range": {}, "retry-after": {}, "set-cookie": {}, "te": {}, "trailer": {},
	"transfer-encoding": {}, "upgrade": {}, "vary": {}, "www-authenticate": {},
	"x-request-id": {},
}

// maxForbiddenName is the length of the longest name in trailerForbidden.
const maxForbiddenName = len("if-unmodified-since")

// overFieldCap reports whether a trailer section net/http parsed (an h2c upstream's, an HTTP/2
// client's) holds more fields than max, the cap the engine's own parser puts on every section.
func overFieldCap(h http.Header, max int) bool {
	n := 0
	for _, vs := range h {
		if n += len(vs); n > max {
			return true
		}
	}
	return false
}

// forbiddenInTrailer reports whether a trailer field called name (any case) is dropped. It
// folds the name into a stack buffer, so it does not allocate.
func forbiddenInTrailer[T ~string | ~[]byte](name T) bool {
	if len(name) > maxForbiddenName {
		return false
	}
	var buf [maxForbiddenName]byte
	for i := range len(name) {
		buf[i] = lower(name[i])
	}
	_, ok := trailerForbidden[string(buf[:len(name)])]
	return ok
}
