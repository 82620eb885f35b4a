package httpfwd

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// Protocol is the protocol spoken to an upstream.
type Protocol uint8

const (
	// HTTP1 forwards over pooled HTTP/1.1 keep-alive connections.
	HTTP1 Protocol = iota
	// H2C forwards over cleartext HTTP/2 with prior knowledge (ports of protocol HTTP2 or GRPC).
	H2C
)

// Upstream says where one request goes. Routers should keep Upstream values per endpoint and
// return them as they are, so that routing does not allocate.
type Upstream struct {
	// Addr is the host:port dialled when Dial is nil; it is also the default Key.
	Addr string
	// Key groups pooled connections: requests with the same Key may share connections.
	Key string
	// Dial opens a connection to the upstream; nil dials Addr over TCP. The context carries the
	// connect timeout. It may return a TLS connection: the engine only speaks HTTP/1.1 over it.
	Dial func(ctx context.Context) (net.Conn, error)
	// Host, when set, replaces the Host sent upstream. Otherwise an absolute-form target's
	// authority is sent, or else the client's Host field unchanged.
	Host string
	// Protocol selects HTTP/1.1 (the zero value) or h2c.
	Protocol Protocol
	// Service is where telemetry says the request went; a pointer, so per-endpoint Upstream
	// values stay cheap to return.
	Service *telemetry.Service
	// Endpoint is the endpoint's address as telemetry reports it (%UPSTREAM_HOST%); empty
	// takes Addr.
	Endpoint string
	// Header holds fields set on the request sent upstream, each replacing every field of the
	// same name the client sent (x-forwarded-client-cert at an inbound listener). Names and
	// values must be valid field syntax: they are written as given. A Router that keeps the
	// slice per connection or endpoint adds no allocation.
	Header []Field
	// Limits, when set, are the connection-pool limits of the upstream's cluster, shared by the
	// Upstreams of all its endpoints; nil imposes none.
	Limits *ClusterLimits
	// Tag is the Router's own, handed back unchanged in Done; a pointer keeps routing
	// allocation-free.
	Tag any
	// ResponseFields are added to the response the client gets for this request (a Set-Cookie
	// for consistent hashing, for example).
	ResponseFields []Field
	// Actions, when set, are what the matched route does besides choosing the upstream
	// (timeout, retries, header changes, rewrite, redirect, direct response, fault, mirror,
	// CORS). The engine reads them from the Upstream of the first attempt; nil keeps the
	// request path free of them.
	Actions *Actions
}

// open connects to the upstream with its own Dial, or over TCP to Addr when it has none; the
// engine, the h2c transport and mirrors all dial this way.
func (up *Upstream) open(ctx context.Context) (net.Conn, error) {
	if up.Dial != nil {
		return up.Dial(ctx)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", up.Addr)
}

// StatusReporter is a Router that also wants the status of each final response an upstream
// sent, for outlier detection by status; Responded is called just before Done.
type StatusReporter interface {
	// Responded reports the final status up answered with.
	Responded(up Upstream, status int)
}

// Field is one header field of a Reject or of Upstream.ResponseFields.
type Field struct{ Name, Value string }

// addFields adds fields to an HTTP/2 response's header.
func addFields(h http.Header, fields []Field) {
	for _, f := range fields {
		h.Add(f.Name, f.Value)
	}
}

// Reject is a response the engine writes instead of forwarding the request.
type Reject struct {
	// Status is the status code, for example 502 or 403. It must be a final status, 200 to
	// 599: any other is sent as 502, since an interim (1xx) status with a body would be read
	// by the client as two responses.
	Status int
	// Reason, when set, is sent in the x-meshentry-reason field so operators see why.
	Reason string
	// Header holds further fields to send.
	Header []Field
	// Body is the response body; its type is text/plain. The engine sends it without its
	// trailing newline and with "; request id <id>\n" appended (the id is in
	// RequestHead.RequestID); an empty Body is sent as no body.
	Body string
	// Flags are the response flags telemetry reports for the refusal (NR, UH).
	Flags telemetry.Flags
	// Service, when set, names the service the refusal is reported under (the blackhole
	// cluster, or a service with no healthy endpoint).
	Service *telemetry.Service
}

// Router decides where each request goes. Its methods are called from many connections at once.
type Router interface {
	// Route is called once per request with its parsed head, which it must not keep. attempt
	// counts the connect failures so far for this request: a Router that balances over
	// endpoints can exclude the ones that just failed. It returns an Upstream, or a Reject to
	// answer the request without forwarding it.
	Route(req *RequestHead, attempt int) (Upstream, *Reject)
	// Done reports how a request sent to up went: err is nil unless the upstream was at
	// fault (connect failure, reset, timeout, malformed response), for passive health
	// checking. Failures caused by the client are reported as nil.
	Done(up Upstream, err error)
}

// RouterFunc adapts a routing function to a Router whose Done does nothing.
type RouterFunc func(req *RequestHead, attempt int) (Upstream, *Reject)

// Route calls f.
func (f RouterFunc) Route(req *RequestHead, attempt int) (Upstream, *Reject) { return f(req, attempt) }

// Done does nothing.
func (RouterFunc) Done(Upstream, error) {}

// Limits bounds what a client or upstream may cost. Zero fields take the defaults shown.
type Limits struct {
	// MaxHeaderBytes bounds a request or response head and a trailer section (64 KiB).
	MaxHeaderBytes int
	// MaxHeaders bounds the fields of a request or response head and of a chunked body's
	// trailer section (100, Envoy's max_headers_count). A request head over it gets 431, a
	// response head over it is malformed (502). A request trailer section over it gets 431
	// and the request is aborted upstream; a response trailer section over it cuts the
	// response, whose head is already out.
	MaxHeaders int
	// HeaderReadTimeout bounds reading a request head once its first byte arrived, and the
	// first request of a connection altogether (10s).
	HeaderReadTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive client connection
	// (1h, Envoy's idle_timeout of an HTTP connection manager).
	IdleTimeout time.Duration
	// StreamIdleTimeout bounds any pause within one exchange: while a request or response
	// body is read or written, while a response is awaited, and on an upgraded (WebSocket)
	// connection (5m, Envoy's stream_idle_timeout). There is no timeout on the exchange as a
	// whole, as Envoy has no route timeout by default here: a long poll, an SSE stream or a
	// watch lasts as long as it makes progress.
	StreamIdleTimeout time.Duration
	// ConnectTimeout bounds one connect attempt to an upstream (5s).
	ConnectTimeout time.Duration
	// MaxAttempts bounds the connect attempts per request, counting the first (3).
	MaxAttempts int
	// ExpectContinueTimeout is how long a request with Expect: 100-continue waits for the
	// upstream's interim response before its body is sent anyway (1s).
	ExpectContinueTimeout time.Duration
	// MaxUpstreamConns bounds the connections HTTP/2 client streams hold open to one HTTP/1.1
	// upstream (Upstream.Key), idle ones included (1024, Envoy's circuit breaker
	// max_connections). A stream beyond it waits for one, for at most StreamIdleTimeout.
	MaxUpstreamConns int
	// MaxReplayBytes bounds the request body held for a route with retries or a mirror, so
	// that another try or the copy can send it again (1 MiB, Envoy's per-connection buffer
	// limit). A larger or chunked body is streamed once: it is not retried after it went
	// out, nor mirrored, and Stats counts it.
	MaxReplayBytes int
	// IdleRelease is Server.IdleRelease for Servers that leave theirs 0: how long a keep-alive
	// client connection waits before it parks (0: one second; negative: never).
	IdleRelease time.Duration
	// MaxMirrors bounds the mirrored requests in flight (128); a copy beyond it is dropped
	// and counted, so a slow mirror never holds the originals back.
	MaxMirrors int
	// MirrorTimeout bounds one mirrored exchange (15s, Envoy's default route timeout).
	MirrorTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	if l.HeaderReadTimeout <= 0 {
		l.HeaderReadTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = time.Hour
	}
	if l.StreamIdleTimeout <= 0 {
		l.StreamIdleTimeout = 5 * time.Minute
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 5 * time.Second
	}
	if l.MaxAttempts <= 0 {
		l.MaxAttempts = 3
	}
	if l.ExpectContinueTimeout <= 0 {
		l.ExpectContinueTimeout = time.Second
	}
	if l.MaxUpstreamConns <= 0 {
		l.MaxUpstreamConns = 1024
	}
	if l.MaxReplayBytes <= 0 {
		l.MaxReplayBytes = 1 << 20
	}
	if l.MaxMirrors <= 0 {
		l.MaxMirrors = 128
	}
	if l.MirrorTimeout <= 0 {
		l.MirrorTimeout = 15 * time.Second
	}
	return l
}

// AccessRecord describes one finished request. It is reused: it and everything it points to
// are valid only during the AccessLog call.
type AccessRecord struct {
	// Start is when the request head had been read.
	Start time.Time
	// Duration is the time from Start until the response was written.
	Duration time.Duration
	// Request is the request head.
	Request *RequestHead
	// RequestID is the x-request-id sent upstream, received or generated.
	RequestID []byte
	// Upstream is the Key of the upstream last tried, empty when none was.
	Upstream string
	// Status is the status sent to the client, 0 when the connection failed before one was.
	Status int
	// RequestBytes and ResponseBytes count body bytes forwarded.
	RequestBytes, ResponseBytes int64
	// Err is what went wrong, if anything.
	Err error
}

// Errors reported to Router.Done and in AccessRecord.Err; match them with errors.Is.
var (
	// ErrConnect means connecting to the upstream failed.
	ErrConnect = errors.New("upstream connect failed")
	// ErrLoop, returned (wrapped) by an Upstream's Dial, means the upstream is this proxy itself:
	// the request is answered 508 Loop Detected at once, with no retry.
	ErrLoop = errors.New("the upstream is this proxy")
	// ErrUpstreamTimeout means the upstream did not answer in time.
	ErrUpstreamTimeout = errors.New("upstream timed out")
	// ErrBadResponse means the upstream's response was malformed.
	ErrBadResponse = errors.New("malformed upstream response")
	// ErrUpstreamClosed means the upstream closed or reset the connection mid-exchange.
	ErrUpstreamClosed = errors.New("upstream closed the connection")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("httpfwd: server closed")
)
