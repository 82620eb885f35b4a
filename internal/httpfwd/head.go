package httpfwd

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"iter"
	"net"
)

// fieldKind names the header fields the engine acts on; all others are forwarded untouched.
type fieldKind uint8

const (
	kindOther fieldKind = iota
	kindHost
	kindContentLength
	kindTransferEncoding
	kindExpect
	kindRequestID
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

// isHostByte holds the bytes a reg-name or IPv4 address may contain (RFC 3986 unreserved,
// sub-delims and pct-encoding), plus ':' and '.' for the inside of an IP-literal.
var isHostByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-._~!$&'()*+,;=%" {
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
}

// parseError is a head the engine refuses; status is what the client is told.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

func badHead(msg string) error { return &parseError{status: 400, msg: msg} }

var (
	errHeadTooLarge = &parseError{status: 431, msg: "request header too large"}
	errVersion      = &parseError{status: 505, msg: "HTTP version not supported"}
	// errCoding is a well-formed list of transfer codings the engine does not implement, such
	// as "gzip, chunked" (RFC 9112 §6.1).
	errCoding = &parseError{status: 501, msg: "transfer coding not implemented"}
)

// Head-level flags gathered while parsing the fields.
const (
	flagClose          uint16 = 1 << iota // Connection: close
	flagKeepAlive                         // Connection: keep-alive
	flagUpgrade                           // Connection: upgrade
	flagChunked                           // Transfer-Encoding ends with chunked
	flagTE                                // a Transfer-Encoding field is present
	flagExpectContinue                    // Expect: 100-continue
	flagRequestID                         // an x-request-id field is present
	flagUpgradeField                      // an Upgrade field is present
)

// headerBlock is the parsed field section of a request or response head.
type headerBlock struct {
	raw      []byte
	fields   []field
	connOpts []span // extra field names listed in Connection, dropped when forwarding
	length   int64  // Content-Length, or -1 when absent
	hosts    int    // number of Host fields
	host     span   // value of the first Host field
	tes      int    // number of Transfer-Encoding fields
	te       span   // value of the first Transfer-Encoding field
	flags    uint16
}

func (h *headerBlock) reset(raw []byte) {
	h.raw = raw
	h.fields = h.fields[:0]
	h.connOpts = h.connOpts[:0]
	h.length = -1
	h.hosts = 0
	h.host = span{}
	h.tes = 0
	h.te = span{}
	h.flags = 0
}

func (h *headerBlock) has(f uint16) bool { return h.flags&f != 0 }

// Header returns the value of the first field called name (any case), or nil.
func (h *headerBlock) Header(name string) []byte {
	for _, f := range h.fields {
		if f.name.end-f.name.start == len(name) && equalFoldString(h.raw[f.name.start:f.name.end], name) {
			return h.raw[f.value.start:f.value.end]
		}
	}
	return nil
}

// Headers yields every field name and value in the order received.
func (h *headerBlock) Headers() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range h.fields {
			if !yield(h.raw[f.name.start:f.name.end], h.raw[f.value.start:f.value.end]) {
				return
			}
		}
	}
}

// ContentLength returns the declared body length, or -1 when there is no Content-Length.
func (h *headerBlock) ContentLength() int64 { return h.length }

// Chunked reports whether the body uses the chunked transfer coding.
func (h *headerBlock) Chunked() bool { return h.has(flagChunked) }

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

// connOpt reports whether name was listed in the Connection field.
func (h *headerBlock) connOpt(name []byte) bool {
	for _, s := range h.connOpts {
		if equalFoldBytes(h.raw[s.start:s.end], name) {
			return true
		}
	}
	return false
}

// forwarded reports whether field f goes to the next hop. Connection cannot remove the
// framing fields or Host: the engine frames the message by them, so dropping them would make
// the next hop read it differently.
func (h *headerBlock) forwarded(f *field) bool {
	switch f.kind {
	case kindHost, kindContentLength, kindTransferEncoding:
		return true
	}
	return !f.kind.hopByHop() && (len(h.connOpts) == 0 || !h.connOpt(h.raw[f.name.start:f.name.end]))
}

// parseFields parses the field lines in h.raw[pos:], which end with the empty line.
func (h *headerBlock) parseFields(pos int, request bool) error {
	raw := h.raw
	for pos < len(raw) {
		nl := bytes.IndexByte(raw[pos:], '\n')
		if nl < 0 {
			return badHead("unterminated header section")
		}
		end := pos + nl
		next := end + 1
		if end > pos && raw[end-1] == '\r' {
			end--
		}
		if end == pos {
			return nil
		}
		if raw[pos] == ' ' || raw[pos] == '\t' {
			return badHead("obsolete line folding")
		}
		colon := bytes.IndexByte(raw[pos:end], ':')
		if colon <= 0 {
			return badHead("header line without a field name")
		}
		name := raw[pos : pos+colon]
		for _, c := range name {
			if !isToken[c] {
				return badHead("invalid header field name")
			}
		}
		vs, ve := pos+colon+1, end
		for vs < ve && (raw[vs] == ' ' || raw[vs] == '\t') {
			vs++
		}
		for ve > vs && (raw[ve-1] == ' ' || raw[ve-1] == '\t') {
			ve--
		}
		value := raw[vs:ve]
		if !validValue(value) {
			return badHead("invalid character in header value")
		}
		kind := classify(name)
		h.fields = append(h.fields, field{name: span{pos, pos + colon}, value: span{vs, ve}, kind: kind})
		if kind != kindOther {
			if err := h.note(kind, vs, ve, request); err != nil {
				return err
			}
		}
		pos = next
	}
	return badHead("unterminated header section")
}

// note records what a field the engine cares about means for framing and forwarding.
func (h *headerBlock) note(kind fieldKind, vs, ve int, request bool) error {
	value := h.raw[vs:ve]
	switch kind {
	case kindHost:
		if h.hosts == 0 {
			h.host = span{vs, ve}
		}
		h.hosts++
	case kindContentLength:
		n, ok := parseLength(value)
		if !ok {
			return badHead("invalid Content-Length")
		}
		if h.length >= 0 && (request || n != h.length) {
			return badHead("multiple Content-Length fields")
		}
		h.length = n
	case kindTransferEncoding:
		h.flags |= flagTE
		if h.tes == 0 {
			h.te = span{vs, ve}
		}
		h.tes++
		for s := range listItems(value) {
			coding := codingName(value[s.start:s.end])
			if !isTokenBytes(coding) {
				// A quoted or empty name: a recipient could read the list another way.
				return badHead("invalid transfer coding")
			}
			if h.has(flagChunked) {
				// Chunked may only be the final coding, and only once (RFC 9112 §6.1).
				return badHead("chunked is not the final transfer coding")
			}
			if equalFold(coding, "chunked") {
				h.flags |= flagChunked
			}
		}
	case kindConnection, kindProxyConnection:
		for s := range listItems(value) {
			opt := value[s.start:s.end]
			switch {
			case equalFold(opt, "close"):
				h.flags |= flagClose
			case equalFold(opt, "keep-alive"):
				h.flags |= flagKeepAlive
			case equalFold(opt, "upgrade"):
				h.flags |= flagUpgrade
			case kind == kindConnection:
				h.connOpts = append(h.connOpts, span{vs + s.start, vs + s.end})
			}
		}
	case kindExpect:
		if equalFold(value, "100-continue") {
			h.flags |= flagExpectContinue
		}
	case kindRequestID:
		h.flags |= flagRequestID
	case kindUpgrade:
		h.flags |= flagUpgradeField
	}
	return nil
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

// RequestHead is a parsed request head. Its byte slices point into a buffer the engine reuses:
// they are valid until the request completes, so copy whatever must outlive it.
type RequestHead struct {
	// Method is the request method; common methods are shared constants, so no allocation.
	Method string
	// Target is the request-target exactly as received.
	Target []byte
	// Path is the path and query to send upstream. For an absolute-form target it is the part
	// after the authority, which may be empty or start with '?'; the engine then sends a '/'
	// before it.
	Path []byte
	// Scheme is "http" or "https" for an absolute-form target, empty otherwise.
	Scheme string
	// Host is the lower-case host from the target (absolute-form, CONNECT) or the Host field,
	// without port and without IPv6 brackets. It is reused across the requests of a
	// connection, so holding on to it is safe.
	Host string
	// Port is the port given with the host, or 0 when none was given.
	Port int
	// Absolute reports an absolute-form target (GET http://host/path), as proxy clients send.
	Absolute bool
	// ProtoMinor is 0 for HTTP/1.0 and 1 for HTTP/1.1.
	ProtoMinor int
	// RemoteAddr and LocalAddr are the addresses of the client connection.
	RemoteAddr, LocalAddr net.Addr
	// RouteState is the Router's to use across the attempts of one request (for example, which
	// endpoints it already tried); the engine never reads or writes it, so a Router resets it
	// itself when attempt is 0.
	RouteState uint64

	headerBlock
	authority   span // host[:port] of an absolute-form or authority-form target
	hostScratch []byte
}

// KeepAlive reports whether the client asked for the connection to stay open after this request.
func (r *RequestHead) KeepAlive() bool {
	if r.has(flagClose) {
		return false
	}
	return r.ProtoMinor > 0 || r.has(flagKeepAlive)
}

// HasBody reports whether a body follows the head.
func (r *RequestHead) HasBody() bool { return r.has(flagChunked) || r.length > 0 }

// WantsUpgrade reports a protocol upgrade request (for example a WebSocket handshake).
func (r *RequestHead) WantsUpgrade() bool {
	return r.has(flagUpgrade) && r.has(flagUpgradeField)
}

// internMethod returns a constant for the common methods so parsing them does not allocate.
func internMethod(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	}
	return string(b)
}

// parse parses raw, a complete request head ending with its empty line. raw must stay
// unchanged while r is in use.
func (r *RequestHead) parse(raw []byte) error {
	r.reset(raw)
	r.Target, r.Path, r.Scheme, r.Port, r.Absolute = nil, nil, "", 0, false
	r.authority = span{}

	nl := bytes.IndexByte(raw, '\n')
	if nl < 0 {
		return badHead("unterminated request line")
	}
	lineEnd := nl
	if lineEnd > 0 && raw[lineEnd-1] == '\r' {
		lineEnd--
	}
	line := raw[:lineEnd]
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return badHead("malformed request line")
	}
	for _, c := range line[:sp1] {
		if !isToken[c] {
			return badHead("invalid method")
		}
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return badHead("malformed request line")
	}
	sp2 += sp1 + 1
	target := line[sp1+1 : sp2]
	for _, c := range target {
		if c <= ' ' || c == 0x7f || c == '#' {
			return badHead("invalid request target")
		}
	}
	minor, err := parseVersion(line[sp2+1:])
	if err != nil {
		return err
	}
	r.ProtoMinor = minor
	r.Method = internMethod(line[:sp1])
	r.Target = target

	if err := r.parseFields(nl+1, true); err != nil {
		return err
	}
	if r.has(flagTE) {
		// Only a lone chunked is taken, as net/http and Envoy do: anything else a lenient
		// upstream could frame differently (RFC 9112 §6.1, §6.3). The engine then sends a
		// Transfer-Encoding of its own.
		switch te := raw[r.te.start:r.te.end]; {
		case r.length >= 0:
			return badHead("both Content-Length and Transfer-Encoding")
		case r.ProtoMinor == 0:
			return badHead("Transfer-Encoding in an HTTP/1.0 request")
		case !r.has(flagChunked):
			return badHead("chunked is not the final transfer coding")
		case r.tes > 1:
			return badHead("multiple Transfer-Encoding fields")
		case equalFold(te, "chunked"):
		case bareCodings(te):
			return errCoding
		default:
			return badHead("Transfer-Encoding other than chunked")
		}
	}
	if r.hosts > 1 {
		return badHead("multiple Host fields")
	}
	if r.hosts == 0 && r.ProtoMinor == 1 {
		return badHead("missing Host field")
	}
	return r.parseTarget(sp1 + 1)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validEscapes reports whether every '%' in the path, the target up to any '?', starts a
// pct-encoded byte (RFC 3986 §2.1). Servers read a malformed escape in different ways, so the
// Router and the upstream could disagree on the path; net/http refuses it.
func validEscapes(path []byte) bool {
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	for {
		i := bytes.IndexByte(path, '%')
		if i < 0 {
			return true
		}
		if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
			return false
		}
		path = path[i+3:]
	}
}

// parseVersion accepts HTTP/1.0 and HTTP/1.1 (and later 1.x, treated as 1.1).
func parseVersion(v []byte) (int, error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, badHead("malformed HTTP version")
	}
	if v[5] != '1' {
		return 0, errVersion
	}
	if v[7] == '0' {
		return 0, nil
	}
	return 1, nil
}

// parseTarget classifies the request-target (RFC 9112 §3.2) and sets Host, Port and Path.
func (r *RequestHead) parseTarget(off int) error {
	t := r.Target
	var auth []byte
	switch {
	case r.Method == "CONNECT":
		auth = t
		r.authority = span{off, off + len(t)}
	case t[0] == '/':
		r.Path = t
	case len(t) == 1 && t[0] == '*':
		if r.Method != "OPTIONS" {
			return badHead("asterisk-form target outside OPTIONS")
		}
		r.Path = t
	default:
		var rest []byte
		switch {
		case len(t) > 7 && equalFold(t[:7], "http://"):
			r.Scheme, rest = "http", t[7:]
		case len(t) > 8 && equalFold(t[:8], "https://"):
			r.Scheme, rest = "https", t[8:]
		default:
			return badHead("unsupported request target")
		}
		end := bytes.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		auth = rest[:end]
		start := off + len(t) - len(rest)
		r.authority = span{start, start + end}
		r.Path = rest[end:]
		r.Absolute = true
	}
	if !validEscapes(r.Path) {
		return badHead("invalid percent-encoding in the request target")
	}
	if auth == nil {
		// Origin-form: route by the Host field (RFC 9112 §3.2.1).
		auth = r.raw[r.host.start:r.host.end]
		if len(auth) == 0 {
			r.Host, r.Port = "", 0
			return nil
		}
	}
	host, port, ok := splitAuthority(auth)
	if !ok {
		return badHead("invalid host")
	}
	r.Port = port
	r.setHost(host)
	return nil
}

// setHost stores the lower-cased host, reusing the previous string when it is unchanged so a
// keep-alive connection allocates it once.
func (r *RequestHead) setHost(host []byte) {
	s := r.hostScratch[:0]
	for _, c := range host {
		s = append(s, lower(c))
	}
	r.hostScratch = s
	if string(s) != r.Host {
		r.Host = string(s)
	}
}

// isIPLiteralByte reports the bytes an IPv6 literal with an optional zone may contain.
func isIPLiteralByte(c byte) bool {
	switch {
	case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	}
	return c == ':' || c == '.' || c == '%' || c == '-' || c == '_' || c == '~'
}

// splitAuthority validates host[:port] (no userinfo) and splits it.
func splitAuthority(a []byte) (host []byte, port int, ok bool) {
	if len(a) == 0 {
		return nil, 0, false
	}
	var rest []byte
	if a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 2 {
			return nil, 0, false
		}
		host, rest = a[1:end], a[end+1:]
		for _, c := range host {
			if !isIPLiteralByte(c) {
				return nil, 0, false
			}
		}
	} else {
		end := bytes.IndexByte(a, ':')
		if end < 0 {
			end = len(a)
		}
		host, rest = a[:end], a[end:]
		if len(host) == 0 {
			return nil, 0, false
		}
		for _, c := range host {
			if !isHostByte[c] {
				return nil, 0, false
			}
		}
	}
	if len(rest) == 0 {
		return host, 0, true
	}
	if rest[0] != ':' || len(rest) > 6 {
		return nil, 0, false
	}
	for _, c := range rest[1:] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		port = port*10 + int(c-'0')
	}
	if port > 65535 {
		return nil, 0, false
	}
	return host, port, true
}

// responseHead is a parsed response head from an upstream.
type responseHead struct {
	status     int
	protoMinor int
	// rest is the status line after the version ("200 OK"), re-sent behind our own version.
	rest span
	headerBlock
}

// keepAlive reports whether the upstream will keep the connection open after this response.
func (r *responseHead) keepAlive() bool {
	if r.has(flagClose) {
		return false
	}
	return r.protoMinor > 0 || r.has(flagKeepAlive)
}

// parse parses raw, a complete response head ending with its empty line.
func (r *responseHead) parse(raw []byte) error {
	r.reset(raw)
	nl := bytes.IndexByte(raw, '\n')
	if nl < 0 {
		return badHead("unterminated status line")
	}
	lineEnd := nl
	if lineEnd > 0 && raw[lineEnd-1] == '\r' {
		lineEnd--
	}
	line := raw[:lineEnd]
	if len(line) < 12 || line[8] != ' ' {
		return badHead("malformed status line")
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return badHead("malformed status line")
	}
	r.protoMinor = minor
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return badHead("malformed status code")
	}
	if len(line) > 12 && line[12] != ' ' {
		return badHead("malformed status line")
	}
	for _, c := range line[12:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return badHead("invalid character in reason phrase")
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	r.rest = span{9, lineEnd}
	return r.parseFields(nl+1, false)
}

// noBody reports a response that never has a body, whatever its fields say (RFC 9112 §6.3).
func (r *responseHead) noBody(method string) bool {
	return method == "HEAD" || r.status < 200 || r.status == 204 || r.status == 304
}

// headEnd returns the length of the head at the start of b (through its empty line), or -1.
// prev is the tail of bytes already read before b, so an end marker split across reads is found.
func headEnd(prev, b []byte) int {
	if len(b) == 0 {
		return -1
	}
	if n := len(prev); n > 0 {
		switch {
		case prev[n-1] == '\n' && b[0] == '\n':
			return 1
		case prev[n-1] == '\n' && b[0] == '\r' && len(b) > 1 && b[1] == '\n':
			return 2
		case n > 1 && prev[n-2] == '\n' && prev[n-1] == '\r' && b[0] == '\n':
			return 1
		}
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// readHead reads one message head (start line through the empty line) from br, appending it to
// dst[:0]. Empty lines before the start line are skipped (RFC 9112 §2.2). It returns
// errHeadTooLarge once the head exceeds max bytes; other errors come from reading.
func readHead(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	dst = dst[:0]
	for skipped := 0; ; skipped++ {
		b, err := br.Peek(1)
		if err != nil {
			return dst, err
		}
		if b[0] != '\r' && b[0] != '\n' || skipped == 8 {
			break
		}
		br.Discard(1)
	}
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				return dst, err
			}
			n = br.Buffered()
		}
		b, _ := br.Peek(n)
		if end := headEnd(dst, b); end >= 0 {
			if len(dst)+end > max {
				return dst, errHeadTooLarge
			}
			dst = append(dst, b[:end]...)
			br.Discard(end)
			return dst, nil
		}
		if len(dst)+len(b) > max {
			return dst, errHeadTooLarge
		}
		dst = append(dst, b...)
		br.Discard(len(b))
	}
}
