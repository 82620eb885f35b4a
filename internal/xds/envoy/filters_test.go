package envoy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

const filtersConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: default}
spec:
  hosts: [shadow.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  http:
  - name: faulty
    match: [{uri: {prefix: /slow}}]
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 12.5}}
    route: [{destination: {host: api.example.com}}]
  - name: grpc-abort
    match: [{uri: {prefix: /grpc}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE}
    route: [{destination: {host: api.example.com}}]
  - name: shared
    corsPolicy:
      allowOrigins: [{exact: "https://a.example.com"}, {regex: "https://.*\\.b\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: FORWARD
    mirror: {host: shadow.example.com}
    mirrorPercentage: {value: 25}
    route: [{destination: {host: api.example.com}}]
`

func filtersResources(t *testing.T, n Node) Resources {
	t.Helper()
	path := filepath.Join(t.TempDir(), "filters.yaml")
	if err := os.WriteFile(path, []byte(filtersConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := compile.Documents(loaded, 1)
	if res.Errors() > 0 {
		t.Fatal(res.Diagnostics[0])
	}
	out, err := NewShared(res.Snapshot, Options{}).Build(n) // Build runs ValidateAll on everything
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// routeNamed finds the route called name in the route configuration rc of res.
func routeNamed(t *testing.T, res Resources, rc, name string) *routev3.Route {
	t.Helper()
	cfg, _ := byNameIn(res, resource.RouteType, rc).(*routev3.RouteConfiguration)
	for _, vh := range cfg.GetVirtualHosts() {
		for _, r := range vh.Routes {
			if r.Name == name {
				return r
			}
		}
	}
	t.Fatalf("route configuration %s has no route %s", rc, name)
	return nil
}

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRouteFiltersFromVirtualService holds fault injection, CORS and mirroring of
// VirtualService HTTP routes to what Istio's sidecar gets: per-filter configs of the fault and
// CORS filters on the route, request_mirror_policies on its action.
func TestRouteFiltersFromVirtualService(t *testing.T) {
	t.Parallel()
	sidecar := filtersResources(t, diffNodes[0])
	grpcNode := filtersResources(t, diffNodes[3])
	million := typev3.FractionalPercent_MILLION
	for _, tc := range []struct {
		name   string
		res    Resources
		rc     string
		route  string
		filter map[string]proto.Message
		mirror []*routev3.RouteAction_RequestMirrorPolicy
	}{
		{name: "a delay and an abort with percentages become the route's HTTPFault", res: sidecar, rc: "80", route: "faulty",
			filter: map[string]proto.Message{FaultFilter: &faultv3.HTTPFault{
				Delay: &faultcommon.FaultDelay{Percentage: &typev3.FractionalPercent{Numerator: 500000, Denominator: million},
					FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)}},
				Abort: &faultv3.FaultAbort{Percentage: &typev3.FractionalPercent{Numerator: 125000, Denominator: million},
					ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}},
			}}},
		{name: "a gRPC abort without percentage aborts every call with the status's code", res: sidecar, rc: "80", route: "grpc-abort",
			filter: map[string]proto.Message{FaultFilter: &faultv3.HTTPFault{
				Abort: &faultv3.FaultAbort{Percentage: &typev3.FractionalPercent{Numerator: 1000000, Denominator: million},
					ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}},
			}}},
		{name: "a corsPolicy becomes the route's CorsPolicy and a mirror its mirror policy", res: sidecar, rc: "80", route: "shared",
			filter: map[string]proto.Message{CORSFilter: &corsv3.CorsPolicy{
				AllowOriginStringMatch: []*matcher.StringMatcher{
					{MatchPattern: &matcher.StringMatcher_Exact{Exact: "https://a.example.com"}},
					{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: `https://.*\.b\.example\.com`}}},
				},
				AllowMethods: "GET,POST", AllowHeaders: "x-user", ExposeHeaders: "x-trace", MaxAge: "86400",
				AllowCredentials: wrapperspb.Bool(true), ForwardNotMatchingPreflights: wrapperspb.Bool(true),
				FilterEnabled: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}},
			}},
			mirror: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "outbound|80||shadow.example.com",
				RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 250000, Denominator: million}},
				TraceSampled:    wrapperspb.Bool(false)}}},
		{name: "a proxyless client gets the fault but no CORS, which grpc-go has no filter for", res: grpcNode, rc: "api.example.com:80", route: "shared",
			mirror: []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "outbound|80||shadow.example.com",
				RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 250000, Denominator: million}},
				TraceSampled:    wrapperspb.Bool(false)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := routeNamed(t, tc.res, tc.rc, tc.route)
			want := map[string]*anypb.Any{}
			for k, m := range tc.filter {
				want[k] = anyOf(t, m)
			}
			got := r.TypedPerFilterConfig
			if got == nil {
				got = map[string]*anypb.Any{}
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("typed_per_filter_config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.mirror, r.GetRoute().GetRequestMirrorPolicies(), protocmp.Transform()); diff != "" {
				t.Errorf("request_mirror_policies (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConnectionManagersCarryRouteFilters checks the HTTP filters the per-route configs name:
// fault, CORS and router at a sidecar, fault and router at a proxyless client.
func TestConnectionManagersCarryRouteFilters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		node     Node
		listener string
		want     []string
	}{
		{name: "a sidecar's port listener runs fault, CORS, then the router", node: diffNodes[0], listener: "0.0.0.0_80",
			want: []string{FaultFilter, CORSFilter, RouterFilter}},
		{name: "a proxyless client's API listener runs fault, then the router", node: diffNodes[3], listener: "api.example.com:80",
			want: []string{FaultFilter, RouterFilter}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, _ := byNameIn(filtersResources(t, tc.node), resource.ListenerType, tc.listener).(*listener.Listener)
			cfg := l.GetApiListener().GetApiListener()
			if cfg == nil {
				for _, fc := range l.GetFilterChains() {
					if fc.Name == "http" {
						cfg = fc.Filters[0].GetTypedConfig()
					}
				}
			}
			m := &hcm.HttpConnectionManager{}
			if err := cfg.UnmarshalTo(m); err != nil {
				t.Fatalf("listener %s: %v", tc.listener, err)
			}
			var got []string
			for _, f := range m.HttpFilters {
				got = append(got, f.Name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("http_filters (-want +got):\n%s", diff)
			}
		})
	}
}
