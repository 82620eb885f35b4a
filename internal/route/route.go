package route

import (
	"regexp"
	"time"

	"github.com/meshentry/meshentry/internal/config"
)

// Mesh is the gateway name that stands for every sidecar, as Istio spells it.
const Mesh = "mesh"

// Proxy is who the table is built for.
type Proxy struct {
	// Namespace is the proxy's namespace: exportTo and sourceNamespace are checked against it.
	Namespace string
	// Labels are the proxy's workload labels, matched by sourceLabels.
	Labels map[string]string
	// Gateways are the gateways this proxy serves as "ns/name"; empty means a sidecar ("mesh").
	Gateways []string
	// Import, when set, narrows what the proxy imports as a Sidecar's egress hosts do: a service
	// or VirtualService host in a namespace counts only if Import(namespace, host) holds. A
	// VirtualService is kept when any of its hosts is imported (all its hosts then apply).
	Import func(namespace, host string) bool
}

// HeaderSource gives a request header's value by its lower-case name without allocating.
type HeaderSource interface {
	// Header returns the first value of the header and whether it is present.
	Header(lowerName string) ([]byte, bool)
}

// Request is what an http route matches on. Host must be normalized (lower case, no port, no
// trailing dot: registry.NormalizeHost); Authority is the Host header or :authority as sent.
type Request struct {
	Host      string
	Port      uint32
	Method    string
	Scheme    string
	Authority string
	// Path is the request target as sent: the path and, after '?', the query.
	Path    []byte
	Headers HeaderSource
	// Gateway is "mesh" for a sidecar or "ns/name" of the gateway whose server took the request;
	// empty means the proxy's first gateway, or "mesh" for a sidecar.
	Gateway string
	// SourceNamespace is the client's namespace; empty means the proxy's own.
	SourceNamespace string
}

// Destination is one weighted target of a route.
type Destination struct {
	// Host is the fully qualified destination host.
	Host   string
	Port   uint32
	Subset string
	Weight int32
	// Cluster is Envoy's name for the target: outbound|PORT|SUBSET|HOST.
	Cluster string
}

// HTTPRoute is one compiled http rule of a VirtualService, ready for the data plane: regexes are
// compiled and durations parsed. It is shared and must not be modified.
type HTTPRoute struct {
	// VirtualService is "ns/name"; Doc is its document (file:line); Index is the rule's position
	// in spec.http; Name is the rule's name.
	VirtualService string
	Doc            *config.Document
	Index          int
	Name           string
	// NotFound is set when the VirtualService binds the host but no rule matched: answer 404 (NR).
	NotFound bool
	// Route is empty when Redirect or DirectResponse answers instead.
	Route          []Destination
	Redirect       *Redirect
	DirectResponse *DirectResponse
	Rewrite        *Rewrite
	// Timeout is zero for none (Istio's sidecar default: no route timeout).
	Timeout time.Duration
	// Retries is never nil on a forwarding route: it holds Istio's default when the rule sets none;
	// Attempts 0 means no retries.
	Retries *RetryPolicy
	Fault   *Fault
	Headers HeaderOps
	// Mirror receives a copy of MirrorPercent (0-100) of the requests, fire and forget.
	Mirror        *Destination
	MirrorPercent float64
	CORS          *CORS

	total int64 // sum of Route weights, for Pick
}

// Redirect answers with a redirect instead of forwarding.
type Redirect struct {
	// URI replaces the path; empty keeps it. Authority replaces the host; empty keeps it.
	URI       string
	Authority string
	// Port replaces the port when non-zero; DerivePort keeps the request's port (FROM_REQUEST_PORT)
	// or the scheme's default (FROM_PROTOCOL_DEFAULT).
	Port       uint32
	DerivePort DerivePort
	Scheme     string
	// Code is the status, 301 by default.
	Code int
}

// DerivePort says where a redirect's port comes from when none is given.
type DerivePort uint8

// The ways a redirect derives its port, as Istio names them.
const (
	FromProtocolDefault DerivePort = iota
	FromRequestPort
)

// DirectResponse answers with a fixed status and body.
type DirectResponse struct {
	Status int
	Body   []byte
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	// URI replaces the matched uri prefix (or the whole path for other matches).
	URI string
	// URIRegex and URIRegexReplace are uriRegexRewrite: every match is replaced (RE2 syntax,
	// \1-style groups already turned into ${1}).
	URIRegex        *regexp.Regexp
	URIRegexReplace string
	Authority       string
}

// RetryOn is a set of Envoy retry conditions.
type RetryOn uint32

// Envoy's retry conditions (x-envoy-retry-on and x-envoy-retry-grpc-on).
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryReset
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryCancelled
	RetryDeadlineExceeded
	RetryInternal
	RetryResourceExhausted
	RetryUnavailable
)

// RetryPolicy is a route's retries.
type RetryPolicy struct {
	Attempts int
	// PerTryTimeout is zero for none (the route timeout bounds all tries).
	PerTryTimeout time.Duration
	On            RetryOn
	// StatusCodes are retried when On has RetryRetriableStatusCodes.
	StatusCodes []int
	// RemoteLocalities allows retries to other localities (retryRemoteLocalities).
	RemoteLocalities bool
}

// Fault injects delays and aborts into a share of the requests.
type Fault struct {
	Delay        time.Duration
	DelayPercent float64
	AbortStatus  int
	AbortPercent float64
	// AbortGRPC is a gRPC status to abort with instead of an HTTP one, "" for none.
	AbortGRPC string
}

// Field is one header name and value; names are lower case.
type Field struct {
	Name, Value string
}

// FieldOps are header edits applied in the order Set, Add, Remove.
type FieldOps struct {
	Set    []Field
	Add    []Field
	Remove []string
}

// HeaderOps are the header edits of a rule (its own and its destination's, rule first).
type HeaderOps struct {
	Request  FieldOps
	Response FieldOps
}

// CORS is a rule's corsPolicy.
type CORS struct {
	AllowOrigins     []Matcher
	AllowMethods     string
	AllowHeaders     string
	ExposeHeaders    string
	MaxAge           time.Duration
	AllowCredentials bool
	// Unmatched is the unmatchedPreflights policy: forward an unmatched preflight upstream.
	ForwardUnmatched bool
}

// L4Route is a compiled tls or tcp rule.
type L4Route struct {
	VirtualService string
	Doc            *config.Document
	Index          int
	Route          []Destination

	total int64
}
