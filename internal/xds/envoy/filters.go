package envoy

import (
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/route"
)

// The HTTP filters of an outbound connection manager, by the names routes key their
// typed_per_filter_config with, as Istio's sidecar has them.
const (
	FaultFilter  = "envoy.filters.http.fault"
	CORSFilter   = "envoy.filters.http.cors"
	RouterFilter = "envoy.filters.http.router"
)

// httpFilters are Istio's outbound filters that a VirtualService route configures: fault and
// CORS, off until a route's per-filter config turns them on, then the router. grpc-go knows no
// CORS filter and would reject the listener, so a proxyless client gets fault and router only,
// as Istio's gRPC generator gives it.
func httpFilters(proxyless bool) []*hcm.HttpFilter {
	filter := func(name string, cfg *anypb.Any) *hcm.HttpFilter {
		return &hcm.HttpFilter{Name: name, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: cfg}}
	}
	out := []*hcm.HttpFilter{filter(FaultFilter, mustAny(&faultv3.HTTPFault{}))}
	if !proxyless {
		out = append(out, filter(CORSFilter, mustAny(&corsv3.Cors{})))
	}
	return append(out, filter(RouterFilter, mustAny(&routerv3.Router{})))
}

// routeFilters sets the rule's fault injection and CORS policy on rt, as typed_per_filter_config
// of the filters above, whatever the route's action (Istio does so too).
func routeFilters(rt *routev3.Route, r *route.HTTPRoute, rule *networking.HTTPRoute, n Node) {
	set := func(name string, cfg *anypb.Any) {
		if rt.TypedPerFilterConfig == nil {
			rt.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		rt.TypedPerFilterConfig[name] = cfg
	}
	if f := faultConfig(r.Fault); f != nil {
		set(FaultFilter, mustAny(f))
	}
	if c := corsPolicy(rule.GetCorsPolicy()); c != nil && !n.Proxyless() {
		set(CORSFilter, mustAny(c))
	}
}

// fraction is a percentage (0-100, fractions kept) as Envoy's parts per million.
func fraction(percent float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(min(max(percent, 0), 100) * 10000), Denominator: typev3.FractionalPercent_MILLION}
}

// faultConfig is the rule's compiled fault (unset percentages already made 100, as the proxy
// applies them) as Envoy's HTTPFault; nil when it injects nothing Envoy can express.
func faultConfig(f *route.Fault) *faultv3.HTTPFault {
	if f == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if f.Delay > 0 {
		out.Delay = &faultcommon.FaultDelay{Percentage: fraction(f.DelayPercent),
			FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay)}}
	}
	abort := &faultv3.FaultAbort{Percentage: fraction(f.AbortPercent)}
	switch {
	case f.AbortGRPC != "":
		var c codes.Code
		if err := c.UnmarshalJSON([]byte(strconv.Quote(f.AbortGRPC))); err == nil {
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(c)}
		}
	case f.AbortStatus >= 200 && f.AbortStatus < 600:
		// Envoy takes 200-599 only; validation refuses others, this keeps a slip from
		// failing every node's translation.
		abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(f.AbortStatus)}
	}
	if abort.ErrorType != nil {
		out.Abort = abort
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// corsPolicy is Istio's translation of a corsPolicy: origins as string matchers (allowOrigin's
// plain strings exact), the lists comma-joined, maxAge in seconds, and the filter enabled for
// every request of the route.
func corsPolicy(in *networking.CorsPolicy) *corsv3.CorsPolicy {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:  joinComma(in.AllowMethods),
		AllowHeaders:  joinComma(in.AllowHeaders),
		ExposeHeaders: joinComma(in.ExposeHeaders),
		FilterEnabled: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}},
	}
	for _, o := range in.AllowOrigin { //nolint:staticcheck // the deprecated field is still read, as Istio reads it
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, stringMatcher(&networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: o}}))
	}
	for _, o := range in.AllowOrigins {
		if m := stringMatcher(o); m != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
		}
	}
	if in.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(in.MaxAge.GetSeconds(), 10)
	}
	if in.AllowCredentials != nil {
		out.AllowCredentials = wrapperspb.Bool(in.AllowCredentials.GetValue())
	}
	switch in.UnmatchedPreflights {
	case networking.CorsPolicy_FORWARD:
		out.ForwardNotMatchingPreflights = wrapperspb.Bool(true)
	case networking.CorsPolicy_IGNORE:
		out.ForwardNotMatchingPreflights = wrapperspb.Bool(false)
	}
	return out
}

func joinComma(list []string) string { return strings.Join(list, ",") }

// mirrorPolicies sends a copy of the rule's mirrored share to its mirror cluster, as Istio's
// request_mirror_policies with trace sampling off; none when the share is 0.
func mirrorPolicies(r *route.HTTPRoute) []*routev3.RouteAction_RequestMirrorPolicy {
	if r.Mirror == nil || r.MirrorPercent <= 0 {
		return nil
	}
	return []*routev3.RouteAction_RequestMirrorPolicy{{
		Cluster:         r.Mirror.Cluster,
		RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: fraction(r.MirrorPercent)},
		TraceSampled:    wrapperspb.Bool(false),
	}}
}
