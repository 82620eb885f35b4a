package accesslog

import (
	"net"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// line is one access-log entry as both formats see it: requests and piped connections are
// reduced to it, so that the two formats share one field order and one notion of "empty".
type line struct {
	start                   time.Time
	method, path, protocol  []byte
	status                  int
	flags                   telemetry.Flags
	details                 string // %RESPONSE_CODE_DETAILS%
	received, sent          int64
	duration, upstreamTime  time.Duration // upstreamTime < 0: none
	forwardedFor, userAgent []byte
	requestID, authority    []byte
	upstreamHost, cluster   string
	local, remote           net.Addr
	sni                     string
}

// fromRequest fills l from an HTTP request record.
func (l *line) fromRequest(r *telemetry.Request) {
	*l = line{start: r.Start, method: r.Method, path: r.Path, status: r.Status, flags: r.Flags,
		received: r.RequestBytes, sent: r.ResponseBytes, duration: r.Duration, upstreamTime: r.UpstreamTime,
		forwardedFor: r.ForwardedFor, userAgent: r.UserAgent, requestID: r.RequestID, authority: r.Authority,
		upstreamHost: r.UpstreamHost, local: r.DownstreamLocal, remote: r.DownstreamRemote}
	l.protocol = protocolBytes(r.Protocol)
	if r.UpstreamTime >= 0 {
		// Envoy's detail for a response that came from the upstream.
		l.details = "via_upstream"
	}
	if r.Service != nil {
		l.cluster = r.Service.Cluster
	}
}

// fromConn fills l from a piped connection record. Envoy's TCP proxy logs no method, path,
// protocol or status: they stay empty and print as "-" (the status as 0, as Envoy prints it).
func (l *line) fromConn(c *telemetry.Conn) {
	*l = line{start: c.Start, flags: c.Flags, received: c.Received, sent: c.Sent, duration: c.Duration,
		upstreamTime: -1, upstreamHost: c.UpstreamHost, local: c.DownstreamLocal, remote: c.DownstreamRemote, sni: c.SNI}
	if c.Service != nil {
		l.cluster = c.Service.Cluster
	}
}

// protocolBytes returns the protocol names the engine reports as shared byte slices, so a
// record's string costs no conversion.
func protocolBytes(p string) []byte {
	switch p {
	case "HTTP/1.1":
		return proto11
	case "HTTP/2":
		return proto2
	case "HTTP/1.0":
		return proto10
	case "":
		return nil
	}
	return []byte(p)
}

var (
	proto10 = []byte("HTTP/1.0")
	proto11 = []byte("HTTP/1.1")
	proto2  = []byte("HTTP/2")
)

// appendTime writes t as Envoy's %START_TIME% does: UTC, milliseconds, a Z
// (2006-01-02T15:04:05.000Z). It writes the digits itself: AppendFormat reads its layout anew
// for every line, a few percent of a proxy that logs each request.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000Z") // not four digits
	}
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1e6, 3)
	return append(b, 'Z')
}

// appendDigits writes v, which is not negative, in exactly n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	var d [4]byte
	for i := n - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:n]...)
}

// appendText writes l in Istio's default text format (Envoy's default with the upstream
// cluster, addresses, SNI and route added). Fields meshentry has no value for print "-".
func appendText(b []byte, l *line) []byte {
	b = append(b, '[')
	b = appendTime(b, l.start)
	b = append(b, "] \""...)
	b = appendTextField(b, l.method)
	b = append(b, ' ')
	b = appendTextField(b, l.path)
	b = append(b, ' ')
	b = appendTextField(b, l.protocol)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, ' ')
	b = l.flags.Append(b)
	b = append(b, ' ')
	b = appendTextField(b, l.details)
	// %CONNECTION_TERMINATION_DETAILS% and "%UPSTREAM_TRANSPORT_FAILURE_REASON%".
	b = append(b, " - \"-\" "...)
	b = strconv.AppendInt(b, l.received, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, l.sent, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, l.duration.Milliseconds(), 10)
	b = append(b, ' ')
	if l.upstreamTime >= 0 {
		b = strconv.AppendInt(b, l.upstreamTime.Milliseconds(), 10)
	} else {
		b = append(b, '-')
	}
	for _, f := range [...][]byte{l.forwardedFor, l.userAgent, l.requestID, l.authority} {
		b = append(b, " \""...)
		b = appendTextField(b, f)
		b = append(b, '"')
	}
	b = append(b, " \""...)
	b = appendTextField(b, l.upstreamHost)
	b = append(b, "\" "...)
	b = appendTextField(b, l.cluster)
	// %UPSTREAM_LOCAL_ADDRESS% is not known: the dial is the endpoint's.
	b = append(b, " - "...)
	b = appendAddr(b, l.local)
	b = append(b, ' ')
	b = appendAddr(b, l.remote)
	b = append(b, ' ')
	b = appendTextField(b, l.sni)
	// %ROUTE_NAME%: meshentry routes by ServiceEntry, without named routes.
	return append(b, " -\n"...)
}

// appendTextField writes v, or "-" when empty, with control bytes and quotes replaced so that
// a value cannot end its field or the line.
func appendTextField[T string | []byte](b []byte, v T) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	for i := range len(v) {
		c := v[i]
		if c < ' ' || c == 0x7f || c == '"' {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendAddr writes a TCP address without allocating, others as they print, "-" for none. An
// IPv4 client of a dual-stack listener is written as IPv4, as Envoy writes it.
func appendAddr(b []byte, a net.Addr) []byte {
	switch a := a.(type) {
	case nil:
		return append(b, '-')
	case *net.TCPAddr:
		if a == nil {
			return append(b, '-')
		}
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(b)
	}
	return appendTextField(b, a.String())
}

// appendJSON writes l as one JSON object with Istio's JSON access-log keys: numbers where
// Envoy's typed JSON has numbers, null where the text format prints "-".
func appendJSON(b []byte, l *line) []byte {
	b = append(b, `{"start_time":"`...)
	b = appendTime(b, l.start)
	b = append(b, `","method":`...)
	b = appendJSONText(b, l.method)
	b = append(b, `,"path":`...)
	b = appendJSONText(b, l.path)
	b = append(b, `,"protocol":`...)
	b = appendJSONText(b, l.protocol)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"response_flags":"`...)
	b = l.flags.Append(b)
	b = append(b, `","response_code_details":`...)
	b = appendJSONText(b, l.details)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, l.received, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, l.sent, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, l.duration.Milliseconds(), 10)
	b = append(b, `,"upstream_service_time":`...)
	if l.upstreamTime >= 0 {
		// A string, as Envoy copies it from the x-envoy-upstream-service-time field.
		b = append(b, '"')
		b = strconv.AppendInt(b, l.upstreamTime.Milliseconds(), 10)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"x_forwarded_for":`...)
	b = appendJSONText(b, l.forwardedFor)
	b = append(b, `,"user_agent":`...)
	b = appendJSONText(b, l.userAgent)
	b = append(b, `,"request_id":`...)
	b = appendJSONText(b, l.requestID)
	b = append(b, `,"authority":`...)
	b = appendJSONText(b, l.authority)
	b = append(b, `,"upstream_host":`...)
	b = appendJSONText(b, l.upstreamHost)
	b = append(b, `,"upstream_cluster":`...)
	b = appendJSONText(b, l.cluster)
	b = append(b, `,"downstream_local_address":`...)
	b = appendJSONAddr(b, l.local)
	b = append(b, `,"downstream_remote_address":`...)
	b = appendJSONAddr(b, l.remote)
	b = append(b, `,"requested_server_name":`...)
	b = appendJSONText(b, l.sni)
	return append(b, "}\n"...)
}

func appendJSONAddr(b []byte, a net.Addr) []byte {
	if a == nil {
		return append(b, "null"...)
	}
	if t, ok := a.(*net.TCPAddr); ok && t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = appendAddr(b, a)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONText writes v as a JSON string, null when empty. Invalid UTF-8 becomes U+FFFD, as
// encoding/json writes it, so a line is always valid JSON.
func appendJSONText[T string | []byte](b []byte, v T) []byte {
	if len(v) == 0 {
		return append(b, "null"...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			b = appendJSONByte(b, c)
			i++
			continue
		}
		// At most UTFMax bytes are converted, which the compiler does on the stack.
		r, n := utf8.DecodeRuneInString(string(v[i:min(i+utf8.UTFMax, len(v))]))
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, v[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// appendJSONByte writes one ASCII byte, escaped where JSON requires it.
func appendJSONByte(b []byte, c byte) []byte {
	switch {
	case c == '"' || c == '\\':
		return append(b, '\\', c)
	case c < ' ' || c == 0x7f:
		return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, c)
}
