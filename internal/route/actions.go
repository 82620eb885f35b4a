package route

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// defaultRetries is Istio's policy for a route whose VirtualService sets no retries.
var defaultRetries = RetryPolicy{
	Attempts:    2,
	On:          RetryConnectFailure | RetryRefusedStream | RetryUnavailable | RetryCancelled | RetryRetriableStatusCodes,
	StatusCodes: []int{503},
}

// DefaultRetries returns a copy of Istio's default retry policy.
func DefaultRetries() RetryPolicy {
	p := defaultRetries
	p.StatusCodes = append([]int(nil), defaultRetries.StatusCodes...)
	return p
}

var retryOnNames = map[string]RetryOn{
	"5xx": Retry5xx, "gateway-error": RetryGatewayError, "connect-failure": RetryConnectFailure,
	"reset": RetryReset, "retriable-4xx": RetryRetriable4xx, "refused-stream": RetryRefusedStream,
	"retriable-status-codes": RetryRetriableStatusCodes, "cancelled": RetryCancelled,
	"deadline-exceeded": RetryDeadlineExceeded, "internal": RetryInternal,
	"resource-exhausted": RetryResourceExhausted, "unavailable": RetryUnavailable,
}

// ParseRetryOn reads Istio's retryOn list: Envoy condition names and HTTP status codes, which
// Istio turns into retriable-status-codes.
func ParseRetryOn(s string) (RetryOn, []int, error) {
	var on RetryOn
	var codes []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if c, ok := retryOnNames[part]; ok {
			on |= c
			continue
		}
		code, err := strconv.Atoi(part)
		if err != nil || code < 100 || code > 599 {
			return 0, nil, fmt.Errorf("retryOn %q is not an Envoy retry condition or an HTTP status", part)
		}
		codes = append(codes, code)
		on |= RetryRetriableStatusCodes
	}
	return on, codes, nil
}

func compileRetries(r *networking.HTTPRetry) (*RetryPolicy, error) {
	if r == nil {
		p := DefaultRetries()
		return &p, nil
	}
	p := RetryPolicy{Attempts: int(r.Attempts), PerTryTimeout: r.PerTryTimeout.AsDuration()}
	if r.Attempts == 0 {
		return &p, nil
	}
	p.On, p.StatusCodes = defaultRetries.On, []int{503}
	if r.RetryOn != "" {
		on, codes, err := ParseRetryOn(r.RetryOn)
		if err != nil {
			return nil, err
		}
		p.On, p.StatusCodes = on, codes
	}
	p.RemoteLocalities = r.RetryRemoteLocalities.GetValue()
	return &p, nil
}

func compileRedirect(r *networking.HTTPRedirect) *Redirect {
	if r == nil {
		return nil
	}
	out := &Redirect{URI: r.Uri, Authority: r.Authority, Scheme: r.Scheme, Code: int(r.RedirectCode)}
	if out.Code == 0 {
		out.Code = 301
	}
	switch p := r.RedirectPort.(type) {
	case *networking.HTTPRedirect_Port:
		out.Port = p.Port
	case *networking.HTTPRedirect_DerivePort:
		if p.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
			out.DerivePort = FromRequestPort
		}
	}
	return out
}

func compileDirect(d *networking.HTTPDirectResponse) *DirectResponse {
	if d == nil {
		return nil
	}
	out := &DirectResponse{Status: int(d.Status)}
	switch b := d.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		out.Body = []byte(b.String_)
	case *networking.HTTPBody_Bytes:
		out.Body = b.Bytes
	}
	return out
}

// groupRef turns RE2 \1 group references, which Istio's docs use, into Go's ${1}.
var groupRef = regexp.MustCompile(`\\(\d)`)

func compileRewrite(r *networking.HTTPRewrite) (*Rewrite, error) {
	if r == nil {
		return nil, nil
	}
	out := &Rewrite{URI: r.Uri, Authority: r.Authority}
	if rr := r.UriRegexRewrite; rr != nil {
		re, err := regexp.Compile(rr.Match)
		if err != nil {
			return nil, fmt.Errorf("uriRegexRewrite: %w", err)
		}
		out.URIRegex, out.URIRegexReplace = re, groupRef.ReplaceAllString(rr.Rewrite, `$${$1}`)
	}
	return out, nil
}

// percent reads a Percent, or the older integer percent, as 0-100.
func percent(p *networking.Percent, old int32) float64 {
	if p != nil {
		return p.Value
	}
	return float64(old)
}

func compileFault(f *networking.HTTPFaultInjection) *Fault {
	if f == nil {
		return nil
	}
	out := &Fault{}
	if d := f.Delay; d != nil {
		out.DelayPercent = percent(d.Percentage, d.Percent)
		if fd, ok := d.HttpDelayType.(*networking.HTTPFaultInjection_Delay_FixedDelay); ok {
			out.Delay = fd.FixedDelay.AsDuration()
		}
		if d.Percentage == nil && d.Percent == 0 {
			out.DelayPercent = 100
		}
	}
	if a := f.Abort; a != nil {
		out.AbortPercent = percent(a.Percentage, 0)
		if a.Percentage == nil {
			out.AbortPercent = 100
		}
		switch e := a.ErrorType.(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			out.AbortStatus = int(e.HttpStatus)
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			out.AbortGRPC = e.GrpcStatus
		}
	}
	return out
}

func fieldOps(o *networking.Headers_HeaderOperations, into *FieldOps) {
	if o == nil {
		return
	}
	into.Set = append(into.Set, sortedFields(o.Set)...)
	into.Add = append(into.Add, sortedFields(o.Add)...)
	for _, r := range o.Remove {
		into.Remove = append(into.Remove, strings.ToLower(r))
	}
}

// sortedFields orders a map's headers by name so that edits apply the same way every time.
func sortedFields(m map[string]string) []Field {
	out := make([]Field, 0, len(m))
	for k, v := range m {
		out = append(out, Field{Name: strings.ToLower(k), Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func compileCORS(c *networking.CorsPolicy) (*CORS, error) {
	if c == nil {
		return nil, nil
	}
	out := &CORS{
		AllowMethods:     strings.Join(c.AllowMethods, ","),
		AllowHeaders:     strings.Join(c.AllowHeaders, ","),
		ExposeHeaders:    strings.Join(c.ExposeHeaders, ","),
		MaxAge:           c.MaxAge.AsDuration(),
		AllowCredentials: c.AllowCredentials.GetValue(),
		ForwardUnmatched: c.UnmatchedPreflights == networking.CorsPolicy_FORWARD,
	}
	for _, o := range c.AllowOrigin {
		out.AllowOrigins = append(out.AllowOrigins, Matcher{kind: matchExact, s: o})
	}
	for _, o := range c.AllowOrigins {
		m, err := compileMatch(o, false)
		if err != nil {
			return nil, fmt.Errorf("corsPolicy.allowOrigins: %w", err)
		}
		out.AllowOrigins = append(out.AllowOrigins, m)
	}
	return out, nil
}

// AllowsOrigin reports whether an Origin header value is allowed; "*" in allowOrigin allows any.
func (c *CORS) AllowsOrigin(origin []byte) bool {
	for i := range c.AllowOrigins {
		m := &c.AllowOrigins[i]
		if (m.kind == matchExact && m.s == "*") || m.Match(origin) {
			return true
		}
	}
	return false
}

// String lists the conditions as Envoy's x-envoy-retry-on spells them, in a fixed order.
func (on RetryOn) String() string {
	names := []string{"5xx", "gateway-error", "connect-failure", "reset", "retriable-4xx", "refused-stream",
		"retriable-status-codes", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
	var out []string
	for i, n := range names {
		if on&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}
