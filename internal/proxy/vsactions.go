package proxy

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
)

// vsActions is one http route of a VirtualService in the engine's terms, made once per table.
type vsActions struct {
	act *httpfwd.Actions
	// hr and table are the rule and the table these were made for: a Serves hint names both.
	hr    *vroute.HTTPRoute
	table *table
	// uris are the uri matches of the rule's match blocks, in order, when a uri rewrite needs to
	// know which prefix matched; empty when the prefix is the same whatever matched.
	uris []uriMatch
}

// uriMatch is one match block's uri, as far as a prefix rewrite cares.
type uriMatch struct {
	kind  uint8 // 0: no uri (Envoy's prefix "/"), 1: prefix, 2: exact, 3: regex
	value string
	re    *regexp.Regexp
	fold  bool
}

// vsActionsFor returns the engine's form of hr for this table, making it on first use.
func (t *table) vsActionsFor(hr *vroute.HTTPRoute, p *Proxy) *vsActions {
	if v, ok := t.actions.Load(hr); ok {
		return v.(*vsActions)
	}
	va := &vsActions{act: toActions(hr), hr: hr, table: t}
	if rw := va.act.Rewrite; rw != nil && rw.URI != "" {
		va.uris = ruleURIs(hr)
		if len(va.uris) == 1 {
			rw.Prefix, va.uris = va.uris[0].prefix(), nil
		} else if len(va.uris) == 0 {
			rw.Prefix = "/"
		}
	}
	if hr.Mirror != nil {
		va.act.Mirror = t.mirrorOf(hr, p)
	}
	v, _ := t.actions.LoadOrStore(hr, va)
	return v.(*vsActions)
}

// prefix is what a prefix rewrite replaces when this block matched: its prefix, "/" for a
// block without uri, the whole path (empty) for exact and regex matches.
func (u *uriMatch) prefix() string {
	switch u.kind {
	case 0:
		return "/"
	case 1:
		return u.value
	}
	return ""
}

// holds reports whether path satisfies the block's uri.
func (u *uriMatch) holds(path []byte) bool {
	switch u.kind {
	case 1:
		return len(path) >= len(u.value) && (string(path[:len(u.value)]) == u.value || u.fold && strings.EqualFold(string(path[:len(u.value)]), u.value))
	case 2:
		return string(path) == u.value || u.fold && strings.EqualFold(string(path), u.value)
	case 3:
		return u.re.Match(path)
	}
	return true
}

// forRequest returns the Actions for a request with this path (and query): the shared ones,
// or, when the rule's blocks match different prefixes, a copy whose rewrite names the prefix
// of the first block whose uri the path satisfies.
func (va *vsActions) forRequest(target []byte) *httpfwd.Actions {
	if len(va.uris) == 0 {
		return va.act
	}
	path := target
	if i := strings.IndexByte(string(target), '?'); i >= 0 {
		path = target[:i]
	}
	for i := range va.uris {
		if va.uris[i].holds(path) {
			a := *va.act
			rw := *a.Rewrite
			rw.Prefix = va.uris[i].prefix()
			a.Rewrite = &rw
			return &a
		}
	}
	return va.act
}

// ruleURIs reads the uri of each match block of hr's rule from its VirtualService.
func ruleURIs(hr *vroute.HTTPRoute) []uriMatch {
	vs, ok := hr.Doc.Spec.(*networking.VirtualService)
	if !ok || hr.Index >= len(vs.Http) {
		return nil
	}
	var out []uriMatch
	for _, m := range vs.Http[hr.Index].Match {
		u := uriMatch{fold: m.IgnoreUriCase}
		switch v := m.GetUri().GetMatchType().(type) {
		case *networking.StringMatch_Prefix:
			u.kind, u.value = 1, v.Prefix
		case *networking.StringMatch_Exact:
			u.kind, u.value = 2, v.Exact
		case *networking.StringMatch_Regex:
			re, err := regexp.Compile("^(?:" + v.Regex + ")$")
			if err != nil {
				continue
			}
			u.kind, u.re = 3, re
		}
		out = append(out, u)
	}
	return out
}

// toActions translates a compiled http route into the engine's Actions.
func toActions(hr *vroute.HTTPRoute) *httpfwd.Actions {
	a := &httpfwd.Actions{Timeout: hr.Timeout}
	a.Request = fieldOps(hr.Headers.Request)
	a.Response = fieldOps(hr.Headers.Response)
	if rw := hr.Rewrite; rw != nil {
		a.Rewrite = &httpfwd.Rewrite{URI: rw.URI, Regex: rw.URIRegex, RegexReplace: rw.URIRegexReplace, Authority: rw.Authority}
	}
	if r := hr.Redirect; r != nil {
		a.Redirect = &httpfwd.Redirect{Status: r.Code, Scheme: r.Scheme, Host: r.Authority, Port: int(r.Port), URI: r.URI}
	}
	if d := hr.DirectResponse; d != nil {
		a.Direct = &httpfwd.DirectResponse{Status: d.Status, Body: string(d.Body)}
	}
	if f := hr.Fault; f != nil {
		a.Fault = &httpfwd.Fault{Delay: f.Delay, DelayPercent: f.DelayPercent, AbortStatus: f.AbortStatus, AbortPercent: f.AbortPercent}
	}
	// Attempts 0 is kept: Istio reads it as no retries at all, connect failures included.
	if r := hr.Retries; r != nil {
		a.Retry = &httpfwd.RetryPolicy{Attempts: r.Attempts, PerTryTimeout: r.PerTryTimeout, On: retryOn(r.On), StatusCodes: r.StatusCodes}
	}
	if c := hr.CORS; c != nil {
		a.CORS = corsOf(c)
	}
	return a
}

// retryOn keeps the HTTP conditions of a route's retryOn; the gRPC ones (cancelled,
// unavailable...) read a grpc-status this engine does not look at.
func retryOn(on vroute.RetryOn) httpfwd.RetryOn {
	var out httpfwd.RetryOn
	for _, m := range [...]struct {
		in  vroute.RetryOn
		out httpfwd.RetryOn
	}{
		{vroute.Retry5xx, httpfwd.Retry5xx}, {vroute.RetryGatewayError, httpfwd.RetryGatewayError},
		{vroute.RetryConnectFailure, httpfwd.RetryConnectFailure}, {vroute.RetryReset, httpfwd.RetryReset},
		{vroute.RetryRetriable4xx, httpfwd.RetryRetriable4xx}, {vroute.RetryRefusedStream, httpfwd.RetryRefusedStream},
		{vroute.RetryRetriableStatusCodes, httpfwd.RetryStatusCodes},
	} {
		if on&m.in != 0 {
			out |= m.out
		}
	}
	return out
}

func fieldOps(in vroute.FieldOps) httpfwd.HeaderOps {
	out := httpfwd.HeaderOps{Remove: in.Remove}
	for _, f := range in.Set {
		out.Set = append(out.Set, httpfwd.Field{Name: f.Name, Value: f.Value})
	}
	for _, f := range in.Add {
		out.Add = append(out.Add, httpfwd.Field{Name: f.Name, Value: f.Value})
	}
	return out
}

func corsOf(c *vroute.CORS) *httpfwd.CORS {
	origins := c.AllowOrigins
	out := &httpfwd.CORS{AllowMethods: c.AllowMethods, AllowHeaders: c.AllowHeaders, ExposeHeaders: c.ExposeHeaders,
		AllowCredentials: c.AllowCredentials, Allow: func(origin []byte) bool {
			for i := range origins {
				if origins[i].Match(origin) {
					return true
				}
			}
			return false
		}}
	if c.MaxAge > 0 {
		out.MaxAge = strconv.FormatInt(int64(c.MaxAge.Seconds()), 10)
	}
	return out
}

// mirrorOf is the mirror of hr: its destination's endpoints taken in turn (its subset's when it
// names one); nil when no ServiceEntry declares the destination or it has no endpoints.
func (t *table) mirrorOf(hr *vroute.HTTPRoute, p *Proxy) *httpfwd.Mirror {
	d := hr.Mirror
	m := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: d.Host, Port: d.Port, Protocol: registry.TrafficHTTP}, false)
	if m.Outcome != registry.Matched || len(m.Port.Endpoints) == 0 {
		p.log.Warn("mirror destination not declared; not mirroring", "route", hr.String(), "host", d.Host, "port", d.Port)
		return nil
	}
	r := t.route(m.Service, m.Port, p)
	if d.Subset != "" {
		se, err := t.subsetRoute(m.Service, m.Port, d.Subset, p)
		if err != nil {
			p.log.Warn("mirror subset not defined; not mirroring", "route", hr.String(), "err", err)
			return nil
		}
		r = se.route
	}
	if len(r.eps) == 0 {
		return nil
	}
	var next atomic.Uint32
	dial := func(ctx context.Context) (net.Conn, error) {
		i := int(next.Add(1)-1) % len(r.eps)
		up, err := r.upstream(ctx, i, p.cfg.Resolver, r.health, false)
		if err != nil {
			return nil, err
		}
		if up.Dial != nil {
			return up.Dial(ctx)
		}
		return p.dialGuarded(ctx, "tcp", up.Addr)
	}
	return &httpfwd.Mirror{Upstream: httpfwd.Upstream{Key: "mirror|" + d.Cluster, Dial: dial}, Percent: hr.MirrorPercent}
}
