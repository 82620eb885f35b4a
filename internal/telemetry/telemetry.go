// Package telemetry is the contract between the data plane and what observes it: the records the
// proxy emits for each finished request and each TCP connection, and the Sink that takes them. The
// access log and the metrics are Sinks; the proxy knows neither.
package telemetry

import (
	"net"
	"time"
)

// Flags are Envoy's response flags: why a request or connection did not go as asked.
type Flags uint16

// The flags meshentry sets, each named by Envoy's short code.
const (
	// NoRoute (NR): no ServiceEntry declares the destination, or policy refused it.
	NoRoute Flags = 1 << iota
	// NoHealthyUpstream (UH): the service has no endpoint that is not ejected.
	NoHealthyUpstream
	// UpstreamConnectFailure (UF): connecting to the upstream failed.
	UpstreamConnectFailure
	// UpstreamOverflow (UO): a connection or request limit refused the request.
	UpstreamOverflow
	// RetriesExhausted (URX): every attempt the proxy may make failed.
	RetriesExhausted
	// DownstreamClosed (DC): the client went away before the response was complete.
	DownstreamClosed
	// UpstreamTimeout (UT): the upstream did not answer in time.
	UpstreamTimeout
	// UpstreamReset (UR): the upstream closed or reset the connection mid-exchange.
	UpstreamReset
	// StreamIdleTimeout (SI): the exchange paused longer than the stream idle timeout.
	StreamIdleTimeout
	// DownstreamProtocolError (DPE): the client's request was malformed.
	DownstreamProtocolError
	// UpstreamProtocolError (UPE): the upstream's response was malformed.
	UpstreamProtocolError
	// DurationTimeout (DT): an idle timeout closed a TCP connection.
	DurationTimeout
	// FaultInjected (FI): a route's fault abort answered the request.
	FaultInjected
	// DelayInjected (DI): a route's fault delay held the request back.
	DelayInjected
)

var flagCodes = [...]string{"NR", "UH", "UF", "UO", "URX", "DC", "UT", "UR", "SI", "DPE", "UPE", "DT", "FI", "DI"}

// String is Envoy's %RESPONSE_FLAGS%: the codes joined by commas, or "-" when none is set.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	return string(f.Append(nil))
}

// Append appends f as String writes it, without allocating when b has room.
func (f Flags) Append(b []byte) []byte {
	if f == 0 {
		return append(b, '-')
	}
	first := true
	for i, code := range flagCodes {
		if f&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		b = append(b, code...)
		first = false
	}
	return b
}

// Service names where traffic was routed, in Istio's label terms. The proxy keeps one per service
// port per snapshot and every record points to it, so reporting copies a pointer.
type Service struct {
	// Host is destination_service: the ServiceEntry host ("api.example.com"), or
	// "PassthroughCluster" / "BlackHoleCluster" for traffic no entry declares.
	Host string
	// Name is destination_service_name: the host for a ServiceEntry, as Istio labels it.
	Name string
	// Namespace is destination_service_namespace: the ServiceEntry's namespace ("unknown" for the
	// passthrough and blackhole clusters).
	Namespace string
	// Cluster is Envoy's cluster name, "outbound|PORT|SUBSET|HOST".
	Cluster string
}

// Request is one finished HTTP request. It is reused: it and the byte slices it holds are valid only
// during the Sink call, which must copy what it keeps.
type Request struct {
	// Start is when the request head had been read; Duration runs from Start to the last byte of
	// the response (or the failure).
	Start    time.Time
	Duration time.Duration
	// UpstreamTime runs from the request being sent upstream to the response head arriving;
	// negative when no response head came.
	UpstreamTime time.Duration
	// Protocol is "HTTP/1.1" or "HTTP/2" ("HTTP/1.0" for a client that spoke it), as Envoy
	// prints %PROTOCOL%.
	Protocol string
	// Method, Path, Authority, ForwardedFor (x-forwarded-for), UserAgent and RequestID
	// (x-request-id) are as the client sent them; empty when absent.
	Method, Path, Authority, ForwardedFor, UserAgent, RequestID []byte
	// Status is the status sent to the client; 0 when none was.
	Status int
	Flags  Flags
	// RequestBytes and ResponseBytes count body bytes received from the client and sent to it.
	RequestBytes, ResponseBytes int64
	// UpstreamHost is the address of the endpoint last tried ("10.0.0.1:443"); empty when none was.
	UpstreamHost string
	// Service is where the request was routed; nil when it was refused before routing.
	Service *Service
	// DownstreamRemote and DownstreamLocal are the client connection's addresses (Envoy's
	// %DOWNSTREAM_REMOTE_ADDRESS% and %DOWNSTREAM_LOCAL_ADDRESS%); nil when unknown.
	DownstreamRemote, DownstreamLocal net.Addr
}

// Conn is one TCP connection the proxy pipes as bytes: a CONNECT tunnel or a captured TCP or TLS
// connection. It is reused like Request.
type Conn struct {
	// Start is when the connection was accepted; Duration is zero at open and runs to the close.
	Start    time.Time
	Duration time.Duration
	// Authority is the CONNECT target or the captured original destination ("host:port").
	Authority string
	// SNI is the TLS server name the client sent, when it sent one.
	SNI string
	// Received counts bytes from the client, Sent bytes to it (Envoy's bytes_received/bytes_sent).
	Received, Sent int64
	Flags          Flags
	// UpstreamHost is the endpoint address connected to; empty when none was.
	UpstreamHost string
	// Service is where the connection was routed; nil when it was refused before routing.
	Service *Service
	// DownstreamRemote and DownstreamLocal are the client connection's addresses; for a
	// captured connection the local one is the original destination.
	DownstreamRemote, DownstreamLocal net.Addr
}

// Sink receives records on the data path: its methods are called from many goroutines at once and
// must neither block nor keep the records.
type Sink interface {
	// Request is called once per finished HTTP request.
	Request(*Request)
	// ConnOpened is called once the upstream of a piped connection is connected.
	ConnOpened(*Conn)
	// ConnClosed is called once per piped connection when it closes, opened or not.
	ConnClosed(*Conn)
}

// Discard is a Sink that drops every record.
type Discard struct{}

// Request drops r.
func (Discard) Request(*Request) {}

// ConnOpened drops c.
func (Discard) ConnOpened(*Conn) {}

// ConnClosed drops c.
func (Discard) ConnClosed(*Conn) {}

// Multi is a Sink that hands each record to every Sink in it, in order.
type Multi []Sink

// Request hands r to each sink.
func (m Multi) Request(r *Request) {
	for _, s := range m {
		s.Request(r)
	}
}

// ConnOpened hands c to each sink.
func (m Multi) ConnOpened(c *Conn) {
	for _, s := range m {
		s.ConnOpened(c)
	}
}

// ConnClosed hands c to each sink.
func (m Multi) ConnClosed(c *Conn) {
	for _, s := range m {
		s.ConnClosed(c)
	}
}
