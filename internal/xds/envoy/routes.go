package envoy

import (
	"sort"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/route"
)

// envoyRoutes turns one compiled VirtualService rule into Envoy routes, one per match block that
// applies on port (Istio emits one route per block, all with the rule's action).
func envoyRoutes(r *route.HTTPRoute, port uint32, n Node) []*routev3.Route {
	action := routeAction(r)
	var rule *networking.HTTPRoute
	if vs := r.Doc.VirtualService(); vs != nil && r.Index >= 0 && r.Index < len(vs.Http) {
		rule = vs.Http[r.Index]
	}
	var out []*routev3.Route
	for _, m := range rule.GetMatch() {
		if !matchApplies(m, port, n) {
			continue
		}
		rt := &routev3.Route{Name: r.Name, Match: routeMatch(m)}
		action(rt)
		routeFilters(rt, r, rule, n)
		out = append(out, rt)
	}
	if len(rule.GetMatch()) == 0 {
		rt := &routev3.Route{Name: r.Name, Match: prefixAll()}
		action(rt)
		routeFilters(rt, r, rule, n)
		out = append(out, rt)
	}
	return out
}

// matchApplies drops the blocks Istio's sourceMatchHTTP drops for this sidecar.
func matchApplies(m *networking.HTTPMatchRequest, port uint32, n Node) bool {
	if m.Port != 0 && m.Port != port {
		return false
	}
	if len(m.Gateways) > 0 {
		mesh := false
		for _, g := range m.Gateways {
			mesh = mesh || g == route.Mesh
		}
		if !mesh {
			return false
		}
	}
	for k, v := range m.SourceLabels {
		if n.Labels[k] != v {
			return false
		}
	}
	return m.SourceNamespace == "" || m.SourceNamespace == n.Namespace
}

func prefixAll() *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
}

func routeMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	rm := prefixAll()
	if m.IgnoreUriCase {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: u.Regex}}
	}
	add := func(name string, sm *networking.StringMatch, invert bool) {
		if hm := headerMatcher(name, sm); hm != nil {
			hm.InvertMatch = invert
			rm.Headers = append(rm.Headers, hm)
		}
	}
	add(":method", m.Method, false)
	add(":authority", m.Authority, false)
	add(":scheme", m.Scheme, false)
	for _, k := range sortedKeys(m.Headers) {
		add(k, m.Headers[k], false)
	}
	for _, k := range sortedKeys(m.WithoutHeaders) {
		add(k, m.WithoutHeaders[k], true)
	}
	for _, k := range sortedKeys(m.QueryParams) {
		if sm := stringMatcher(m.QueryParams[k]); sm != nil {
			rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{Name: k,
				QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}})
		}
	}
	return rm
}

func headerMatcher(name string, sm *networking.StringMatch) *routev3.HeaderMatcher {
	if sm == nil {
		return nil
	}
	if r, ok := sm.MatchType.(*networking.StringMatch_Regex); ok && r.Regex == "*" {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	m := stringMatcher(sm)
	if m == nil {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: m}}
}

func stringMatcher(sm *networking.StringMatch) *matcher.StringMatcher {
	switch u := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: u.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: u.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: u.Regex}}}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// routeAction returns a function that sets the rule's action on an Envoy route.
func routeAction(r *route.HTTPRoute) func(*routev3.Route) {
	return func(rt *routev3.Route) {
		switch {
		case r.DirectResponse != nil:
			rt.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: uint32(r.DirectResponse.Status)}}
		case r.Redirect != nil:
			rd := &routev3.RedirectAction{HostRedirect: r.Redirect.Authority, PortRedirect: r.Redirect.Port}
			if r.Redirect.URI != "" {
				rd.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Redirect.URI}
			}
			if r.Redirect.Scheme != "" {
				rd.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Redirect.Scheme}
			}
			rt.Action = &routev3.Route_Redirect{Redirect: rd}
		default:
			rt.Action = &routev3.Route_Route{Route: forward(r)}
		}
	}
}

func forward(r *route.HTTPRoute) *routev3.RouteAction {
	ra := &routev3.RouteAction{Timeout: durationpb.New(r.Timeout)}
	if len(r.Route) == 1 {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Route[0].Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range r.Route {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: d.Cluster, Weight: wrapperspb.UInt32(uint32(d.Weight))})
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.Rewrite != nil {
		if r.Rewrite.URI != "" {
			ra.PrefixRewrite = r.Rewrite.URI
		}
		if r.Rewrite.Authority != "" {
			ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: r.Rewrite.Authority}
		}
	}
	if r.Retries != nil {
		ra.RetryPolicy = retryPolicy(*r.Retries)
	}
	ra.RequestMirrorPolicies = mirrorPolicies(r)
	return ra
}

func retryPolicy(p route.RetryPolicy) *routev3.RetryPolicy {
	if p.Attempts == 0 {
		return nil
	}
	rp := &routev3.RetryPolicy{RetryOn: p.On.String(), NumRetries: wrapperspb.UInt32(uint32(p.Attempts))}
	for _, c := range p.StatusCodes {
		rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, uint32(c))
	}
	if p.PerTryTimeout > 0 {
		rp.PerTryTimeout = durationpb.New(p.PerTryTimeout)
	}
	return rp
}

// defaultRoute sends everything to one cluster with Istio's default retries.
func defaultRoute(cluster string) *routev3.Route {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}, Timeout: durationpb.New(0),
		RetryPolicy: retryPolicy(route.DefaultRetries())}
	return &routev3.Route{Name: "default", Match: prefixAll(), Action: &routev3.Route_Route{Route: ra}}
}
