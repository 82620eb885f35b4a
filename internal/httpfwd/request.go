package httpfwd

import (
	"bytes"
	"net"
	"net/netip"
)

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
	// RequestID is the x-request-id of this request, the client's or one the engine made up.
	// The engine sets it before Router.Route and Server.OnConnect, so a Router or CONNECT
	// handler can name it in its logs and answers; like the other slices it is valid only
	// until the request completes.
	RequestID []byte
	// RouteState is the Router's to use across the attempts of one request (for example, which
	// endpoints it already tried); the engine never reads or writes it, so a Router resets it
	// itself when attempt is 0.
	RouteState uint64
	// RouteHint is the Router's as well: what LoopRoute.Serves found for this request, left for
	// the Router's attempt 0 to reuse rather than look up again. The engine clears it with each
	// head it parses and reads it never.
	RouteHint any
	// RetriedStatus is the status of the response that the attempt being routed retries (a
	// status the route's retry policy names); 0 for a first attempt and for a retry of a
	// failure that brought no response. Envoy's previous-hosts predicate, which Istio puts on
	// every retry, only prefers other hosts: a Router that has none left may pick a tried
	// endpoint again for such a retry rather than answer for the upstream itself.
	RetriedStatus int
	// RetriedReset is set for an attempt that retries a try whose upstream connected and then
	// failed before a response (a reset, a close, a malformed head, a per-try timeout): a
	// Router may pick a tried endpoint again for it too, as for RetriedStatus. A retry of a
	// failed connect sets neither.
	RetriedReset bool

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
	r.RouteHint, r.RetriedStatus, r.RetriedReset = nil, 0, false
	r.authority = span{}

	line, nl := firstLine(raw)
	if nl < 0 {
		return badHead("unterminated request line")
	}
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
	if err := requestCoding(r); err != nil {
		return err
	}
	if r.hosts > 1 {
		return badHead("multiple Host fields")
	}
	if r.hosts == 0 && r.ProtoMinor == 1 {
		return badHead("missing Host field")
	}
	return r.parseTarget(sp1 + 1)
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

// splitAuthority validates host[:port] (no userinfo) and splits it. The host must be a
// DNS-style name (validName), an IPv4 address in dotted-decimal, or an IPv6 address in
// brackets without a zone. Anything else, above all a zone ("[::1%25.example]") or a
// percent-encoding, is refused: the Router matches names by their text while a resolver or
// dialer reads such a host as an address, so an IP literal could pass for a declared name.
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
		if !validIPv6(host) {
			return nil, 0, false
		}
	} else {
		end := bytes.IndexByte(a, ':')
		if end < 0 {
			end = len(a)
		}
		host, rest = a[:end], a[end:]
		if !validHostName(host) {
			return nil, 0, false
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

// idempotent reports the methods a proxy may resend (RFC 9110 §9.2.2), or a request marked
// with an idempotency key.
func (r *RequestHead) idempotent() bool {
	switch r.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return r.Header("idempotency-key") != nil || r.Header("x-idempotency-key") != nil
}

// validIPv6 reports an IPv6 address without a zone, the only IP-literal taken in brackets
// (IPvFuture and IPv4 in brackets are refused).
func validIPv6(b []byte) bool {
	for _, c := range b {
		// Checked first so that ParseAddr, which takes zones, never sees one.
		if !(isHex(c) || c == ':' || c == '.') {
			return false
		}
	}
	ip, err := netip.ParseAddr(string(b))
	return err == nil && ip.Is6() && ip.Zone() == ""
}

// validHostName reports a DNS-style name or a dotted-decimal IPv4 address: labels of letters,
// digits, '-' and '_' of at most 63 bytes, at most 253 bytes in all, with one trailing dot
// allowed. A name whose last label starts with a digit must be an IPv4 address in canonical
// form: resolvers and URL parsers read "127.1", "0x7f.1" or "2130706433" as addresses, so
// such a name is refused rather than matched as a name (the WHATWG URL standard's
// "ends in a number" rule).
func validHostName(h []byte) bool {
	if n := len(h); n > 1 && h[n-1] == '.' {
		h = h[:n-1]
	}
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	label, last := 0, 0
	for i, c := range h {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label, last = 0, i+1
			continue
		case '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
		if label++; label > 63 {
			return false
		}
	}
	if label == 0 {
		return false
	}
	if c := h[last]; '0' <= c && c <= '9' {
		return validIPv4(h)
	}
	return true
}

// validIPv4 reports four decimal octets without leading zeros, as netip.ParseAddr takes them,
// without converting to a string.
func validIPv4(h []byte) bool {
	parts, val, digits := 0, 0, 0
	for i := 0; i <= len(h); i++ {
		if i == len(h) || h[i] == '.' {
			if digits == 0 || parts == 4 {
				return false
			}
			parts, val, digits = parts+1, 0, 0
			continue
		}
		c := h[i]
		if c < '0' || c > '9' || digits > 0 && val == 0 {
			return false // not a digit, or a leading zero
		}
		val = val*10 + int(c-'0')
		if digits++; val > 255 {
			return false
		}
	}
	return parts == 4
}

// Authority returns host[:port] of an absolute-form or authority-form target as sent, or nil for
// an origin-form target (whose authority is the Host field).
func (r *RequestHead) Authority() []byte {
	if r.authority.end <= r.authority.start {
		return nil
	}
	return r.raw[r.authority.start:r.authority.end]
}
