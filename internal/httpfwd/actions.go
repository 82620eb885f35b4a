package httpfwd

import (
	"math/rand/v2"
	"regexp"
	"time"
)

// Actions are what a matched route does to a request besides choosing its upstream: Istio's
// HTTPRoute fields, pre-parsed by the Router. A Router returns them in Upstream.Actions and
// should keep one value per route per snapshot, so that returning it copies a pointer; nil
// leaves the request path as it is without them (and the engine's connect retries alone).
//
// A Router that answers with Redirect, Direct or a fault abort need not fill the rest of the
// Upstream: the engine answers before it would connect.
type Actions struct {
	// Timeout bounds the whole exchange, retries included, from the request being routed to
	// the response's last byte; at the deadline the client gets 504 "upstream request
	// timeout" flagged UT (or, once the response began, a cut response). Zero sets none.
	Timeout time.Duration
	// Retry, when set, retries failed attempts on another endpoint; nil keeps the engine's
	// connect-failure retries (Limits.MaxAttempts) and nothing else.
	Retry *RetryPolicy
	// Request and Response change the header fields sent upstream and to the client.
	Request, Response HeaderOps
	// Rewrite, when set, changes the path or authority sent upstream.
	Rewrite *Rewrite
	// Redirect, when set, answers with a redirect instead of forwarding.
	Redirect *Redirect
	// Direct, when set, answers with a fixed response instead of forwarding.
	Direct *DirectResponse
	// Fault, when set, delays or aborts a share of the requests.
	Fault *Fault
	// Mirror, when set, sends a copy of a share of the requests to another upstream.
	Mirror *Mirror
	// CORS, when set, answers preflight requests and adds CORS fields for allowed origins.
	CORS *CORS
}

// LoopServes reports whether the loop engine carries out a for a request without a body
// exactly as the Go engine does: nil, or a retry policy without a per-try timeout and nothing
// else, which is what most VirtualService routes hold (Istio's default retries).
func (a *Actions) LoopServes() bool {
	return a == nil || a.Timeout == 0 && (a.Retry == nil || a.Retry.PerTryTimeout == 0) &&
		a.Request.empty() && a.Response.empty() && a.Rewrite == nil && a.Redirect == nil &&
		a.Direct == nil && a.Fault == nil && a.Mirror == nil && a.CORS == nil
}

// HeaderOps change a header section: Remove drops every field of the names given, Set
// replaces every field of its name with one, and Add appends a field.
type HeaderOps struct {
	// Set holds fields that replace every field of the same name.
	Set []Field
	// Add holds fields added after those present.
	Add []Field
	// Remove holds names whose fields are dropped (any case).
	Remove []string
}

// empty reports ops that change nothing.
func (h *HeaderOps) empty() bool { return len(h.Set) == 0 && len(h.Add) == 0 && len(h.Remove) == 0 }

// drops reports whether a field called name is not passed on: it is removed or replaced.
func (h *HeaderOps) drops(name []byte) bool {
	if replaced(h.Set, name) {
		return true
	}
	for _, r := range h.Remove {
		if len(r) == len(name) && equalFoldString(name, r) {
			return true
		}
	}
	return false
}

// RetryOn is a set of Envoy's retry conditions (x-envoy-retry-on).
type RetryOn uint16

// Envoy's retry conditions, as Istio's retryOn names them.
const (
	// Retry5xx retries a 5xx response, a reset, a connect failure and a per-try timeout ("5xx").
	Retry5xx RetryOn = 1 << iota
	// RetryGatewayError retries 502, 503 and 504, resets, connect failures and per-try
	// timeouts ("gateway-error").
	RetryGatewayError
	// RetryConnectFailure retries a failed connect ("connect-failure").
	RetryConnectFailure
	// RetryReset retries an upstream that closed or reset before answering, connect failures
	// included ("reset").
	RetryReset
	// RetryRetriable4xx retries a 409 ("retriable-4xx").
	RetryRetriable4xx
	// RetryRefusedStream retries an HTTP/2 stream the upstream refused ("refused-stream").
	RetryRefusedStream
	// RetryStatusCodes retries the statuses in RetryPolicy.StatusCodes ("retriable-status-codes").
	RetryStatusCodes
)

// RetryPolicy says when and how often a request is retried.
type RetryPolicy struct {
	// Attempts is the number of retries after the first try (Istio's attempts).
	Attempts int
	// PerTryTimeout bounds each try; zero leaves only Actions.Timeout.
	PerTryTimeout time.Duration
	// On is the set of conditions that are retried.
	On RetryOn
	// StatusCodes are the statuses RetryStatusCodes retries.
	StatusCodes []int
}

// exhausted reports whether a final response of status is one the policy retries but may not,
// its attempt-th retry made already: Envoy flags that response URX. A policy of no attempts
// (Istio's attempts: 0, no retries at all) exhausts nothing.
func (p *RetryPolicy) exhausted(status, attempt int) bool {
	return p != nil && p.Attempts > 0 && attempt >= p.Attempts && p.retriesStatus(status)
}

// retriesStatus reports whether a final response of status is retried.
func (p *RetryPolicy) retriesStatus(status int) bool {
	switch {
	case p.On&Retry5xx != 0 && status >= 500 && status <= 599:
		return true
	case p.On&RetryGatewayError != 0 && (status == 502 || status == 503 || status == 504):
		return true
	case p.On&RetryRetriable4xx != 0 && status == 409:
		return true
	case p.On&RetryStatusCodes != 0:
		for _, s := range p.StatusCodes {
			if s == status {
				return true
			}
		}
	}
	return false
}

// retriesReset reports whether an upstream that closed before answering is retried.
func (p *RetryPolicy) retriesReset() bool { return p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0 }

// connectTries is how many connect attempts a request may make: the policy's when it retries
// connect failures, one when it does not, def (the engine's default) without a policy.
func (p *RetryPolicy) connectTries(def int) int {
	switch {
	case p == nil:
		return def
	case p.retriesConnect():
		return p.Attempts + 1
	}
	return 1
}

// retriesConnect reports whether a failed connect is retried.
func (p *RetryPolicy) retriesConnect() bool { return p.retriesReset() || p.On&RetryConnectFailure != 0 }

// retriesTimeout reports whether a try that ran out of its per-try timeout is retried.
func (p *RetryPolicy) retriesTimeout() bool { return p.On&(Retry5xx|RetryGatewayError) != 0 }

// Rewrite changes what is sent upstream, as Istio's HTTPRewrite does.
type Rewrite struct {
	// Prefix is the path prefix the route matched, which URI replaces; empty replaces the
	// whole path (an exact match). The query is kept either way.
	Prefix string
	// URI, when set, replaces Prefix (or the path).
	URI string
	// Regex and RegexReplace, when Regex is set, rewrite the path as Envoy's regex_rewrite:
	// every match of Regex is replaced by RegexReplace (with \1-style groups written $1).
	Regex        *regexp.Regexp
	RegexReplace string
	// Authority, when set, replaces the Host sent upstream.
	Authority string
}

// Redirect answers with a redirect, as Istio's HTTPRedirect: each empty part keeps the
// request's own.
type Redirect struct {
	// Status is the redirect status (301 when zero).
	Status int
	// Scheme, Host and Port replace the request's; Port 0 keeps the request's port, or none
	// when it had none.
	Scheme, Host string
	Port         int
	// URI replaces the path and query.
	URI string
}

// DirectResponse answers with a fixed status and body, as Istio's HTTPDirectResponse.
type DirectResponse struct {
	// Status is the status sent.
	Status int
	// Body is sent as given; empty sends no body.
	Body string
}

// Fault delays or aborts a share of requests, as Istio's HTTPFaultInjection.
type Fault struct {
	// Delay is how long a delayed request waits before it is forwarded.
	Delay time.Duration
	// DelayPercent is the share of requests delayed, 0 to 100.
	DelayPercent float64
	// AbortStatus is the status an aborted request gets; 0 aborts none.
	AbortStatus int
	// AbortPercent is the share of requests aborted, 0 to 100.
	AbortPercent float64
}

// Mirror sends a copy of a share of requests to another upstream, as Istio's mirror: fire and
// forget, the copy's Host gets Envoy's "-shadow" suffix, and its answer is discarded.
type Mirror struct {
	// Upstream is where copies go; its Addr, Key, Dial and Host are used.
	Upstream Upstream
	// Percent is the share of requests mirrored, 0 to 100.
	Percent float64
}

// CORS is a route's CORS policy, as Istio's CorsPolicy.
type CORS struct {
	// Origins are the origins allowed; a request from any other gets no CORS fields.
	Origins []OriginMatch
	// Allow, when set, decides instead of Origins whether an origin is allowed (a Router's
	// own compiled matchers).
	Allow func(origin []byte) bool
	// AllowMethods, AllowHeaders, ExposeHeaders and MaxAge are the comma-separated values of
	// the Access-Control-* fields; empty ones are not sent.
	AllowMethods, AllowHeaders, ExposeHeaders, MaxAge string
	// AllowCredentials sends Access-Control-Allow-Credentials: true.
	AllowCredentials bool
}

// OriginMatch matches an Origin value by one of its fields (Istio's StringMatch).
type OriginMatch struct {
	// Exact matches the whole origin, Prefix its start; "*" as Exact matches any.
	Exact, Prefix string
	// Regex, when set, must match the whole origin (RE2, anchored by the caller).
	Regex *regexp.Regexp
}

// allows reports whether origin is allowed.
func (c *CORS) allows(origin []byte) bool {
	if c.Allow != nil {
		return c.Allow(origin)
	}
	for _, m := range c.Origins {
		switch {
		case m.Regex != nil:
			if m.Regex.Match(origin) {
				return true
			}
		case m.Exact != "":
			if m.Exact == "*" || string(origin) == m.Exact {
				return true
			}
		case m.Prefix != "":
			if len(origin) >= len(m.Prefix) && string(origin[:len(m.Prefix)]) == m.Prefix {
				return true
			}
		}
	}
	return false
}

// chance reports true for percent of the calls, percent from 0 to 100.
func chance(percent float64) bool {
	return percent >= 100 || percent > 0 && rand.Float64()*100 < percent
}
