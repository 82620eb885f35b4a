package explain

import (
	"fmt"
	"io"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
)

// Route is the VirtualService rule that took the request, and why the earlier ones did not.
type Route struct {
	VirtualService string `json:"virtualService"`
	File           string `json:"file,omitempty"`
	Line           int    `json:"line,omitempty"`
	// Gateway is "mesh" for a sidecar or the "ns/name" the proxy acted as; Host is the
	// VirtualService host (Envoy domain) that took the request; Kind is http, tls or tcp.
	Gateway string `json:"gateway"`
	Host    string `json:"host,omitempty"`
	Kind    string `json:"kind"`
	// Rule is the matched rule's index in spec.http, spec.tls or spec.tcp; -1 when none matched.
	Rule         int                `json:"rule"`
	RuleName     string             `json:"ruleName,omitempty"`
	Tried        []RuleTried        `json:"tried,omitempty"`
	Destinations []RouteDestination `json:"destinations,omitempty"`
	// Action is set when the rule answers itself (redirect, direct response) or nothing matched.
	Action   string   `json:"action,omitempty"`
	Settings []string `json:"settings,omitempty"`
}

// RuleTried is one rule tried in order.
type RuleTried struct {
	Rule    int    `json:"rule"`
	Name    string `json:"name,omitempty"`
	Matched bool   `json:"matched"`
	Why     string `json:"why"`
}

// RouteDestination is one weighted target of the matched rule.
type RouteDestination struct {
	Host    string  `json:"host"`
	Port    uint32  `json:"port"`
	Subset  string  `json:"subset,omitempty"`
	Weight  int32   `json:"weight"`
	Share   float64 `json:"share"`
	Cluster string  `json:"cluster"`
}

// HTTPRequest is what http route matching looks at beyond the host and port.
type HTTPRequest struct {
	Method string
	// Path is the request target, with the query after '?'.
	Path    string
	Scheme  string
	Headers map[string]string
}

type headerMap map[string]string

func (h headerMap) Header(name string) ([]byte, bool) {
	v, ok := h[name]
	return []byte(v), ok
}

// routeFor consults the VirtualServices for the request, returning nil when none binds it.
func routeFor(snap *registry.Snapshot, req Request, traffic registry.Traffic) (*Route, []route.Destination) {
	p := route.Proxy{Namespace: req.Namespace, Labels: req.Labels, Import: req.Import}
	if req.Gateway != "" {
		p.Gateways = []string{req.Gateway}
	}
	table := route.Build(snap, p)
	gw := req.Gateway
	if gw == "" {
		gw = route.Mesh
	}
	host := registry.NormalizeHost(req.Host)
	switch traffic {
	case registry.TrafficHTTP:
		return httpRoute(table, req, host, gw)
	case registry.TrafficTLS:
		if r := table.TLS(host, req.Port, req.IP, gw); r != nil {
			return l4Route(r, gw, "tls"), r.Route
		}
	case registry.TrafficTCP:
		if r := table.TCP(req.Port, req.IP, gw); r != nil {
			return l4Route(r, gw, "tcp"), r.Route
		}
	}
	return nil, nil
}

func httpRoute(table *route.Table, req Request, host, gw string) (*Route, []route.Destination) {
	h := req.HTTP
	rr := &route.Request{Host: host, Port: req.Port, Method: h.Method, Scheme: h.Scheme, Authority: req.Host,
		Path: []byte(h.Path), Headers: headerMap(lowerKeys(h.Headers)), Gateway: gw}
	if rr.Method == "" {
		rr.Method = "GET"
	}
	if rr.Scheme == "" {
		rr.Scheme = "http"
	}
	if len(rr.Path) == 0 {
		rr.Path = []byte("/")
	}
	tr := table.ExplainHTTP(rr)
	if tr.VirtualService == "" {
		return nil, nil
	}
	out := &Route{VirtualService: tr.VirtualService, Gateway: gw, Host: tr.Domain, Kind: "http", Rule: -1}
	out.File, out.Line = docPosition(tr.Doc)
	for _, rt := range tr.Rules {
		out.Tried = append(out.Tried, RuleTried{Rule: rt.Index, Name: rt.Name, Matched: rt.Matched, Why: rt.Reason})
	}
	r := tr.Route
	if r.NotFound {
		out.Action = "no rule matched: Envoy answers 404 (NR, no route)"
		return out, nil
	}
	out.Rule, out.RuleName = r.Index, r.Name
	out.Destinations = destinations(r.Route)
	out.Settings = settings(r)
	switch {
	case r.Redirect != nil:
		out.Action = redirectText(r.Redirect)
	case r.DirectResponse != nil:
		out.Action = fmt.Sprintf("direct response %d (%d bytes of body)", r.DirectResponse.Status, len(r.DirectResponse.Body))
	}
	return out, r.Route
}

func l4Route(r *route.L4Route, gw, kind string) *Route {
	out := &Route{VirtualService: r.VirtualService, Gateway: gw, Kind: kind, Rule: r.Index, Destinations: destinations(r.Route)}
	out.File, out.Line = docPosition(r.Doc)
	return out
}

func docPosition(d *config.Document) (string, int) {
	if d == nil {
		return "", 0
	}
	return d.File, d.Line
}

func lowerKeys(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[strings.ToLower(k)] = v
	}
	return out
}

func destinations(ds []route.Destination) []RouteDestination {
	var total int32
	for _, d := range ds {
		total += d.Weight
	}
	out := make([]RouteDestination, 0, len(ds))
	for _, d := range ds {
		share := 0.0
		if total > 0 {
			share = 100 * float64(d.Weight) / float64(total)
		}
		out = append(out, RouteDestination{Host: d.Host, Port: d.Port, Subset: d.Subset, Weight: d.Weight, Share: share, Cluster: d.Cluster})
	}
	return out
}

func redirectText(r *route.Redirect) string {
	parts := []string{fmt.Sprintf("redirect %d", r.Code)}
	for _, f := range []struct{ name, v string }{{"scheme", r.Scheme}, {"authority", r.Authority}, {"uri", r.URI}} {
		if f.v != "" {
			parts = append(parts, f.name+" "+f.v)
		}
	}
	if r.Port != 0 {
		parts = append(parts, fmt.Sprintf("port %d", r.Port))
	}
	return strings.Join(parts, ", ")
}

// settings lists what the rule does besides choosing destinations, in Istio's field names.
func settings(r *route.HTTPRoute) []string {
	var out []string
	if r.Timeout > 0 {
		out = append(out, "timeout "+r.Timeout.String())
	}
	if rt := r.Retries; rt != nil {
		s := fmt.Sprintf("retries %d on %s", rt.Attempts, rt.On)
		if len(rt.StatusCodes) > 0 {
			s += fmt.Sprintf(" (status %v)", rt.StatusCodes)
		}
		if rt.PerTryTimeout > 0 {
			s += ", perTryTimeout " + rt.PerTryTimeout.String()
		}
		if rt.Attempts == 0 {
			s = "retries off"
		}
		out = append(out, s)
	}
	if f := r.Fault; f != nil {
		if f.Delay > 0 {
			out = append(out, fmt.Sprintf("fault delay %s for %g%%", f.Delay, f.DelayPercent))
		}
		if f.AbortStatus != 0 {
			out = append(out, fmt.Sprintf("fault abort %d for %g%%", f.AbortStatus, f.AbortPercent))
		}
	}
	if rw := r.Rewrite; rw != nil {
		if rw.URI != "" {
			out = append(out, "rewrite uri "+rw.URI)
		}
		if rw.URIRegex != nil {
			out = append(out, fmt.Sprintf("rewrite uri regex %s to %s", rw.URIRegex, rw.URIRegexReplace))
		}
		if rw.Authority != "" {
			out = append(out, "rewrite authority "+rw.Authority)
		}
	}
	if m := r.Mirror; m != nil {
		out = append(out, fmt.Sprintf("mirror %g%% to %s", r.MirrorPercent, m.Cluster))
	}
	if r.CORS != nil {
		out = append(out, "corsPolicy")
	}
	return out
}

// writeText prints the route lines of the text report.
func (r *Route) writeText(w io.Writer) {
	fmt.Fprintf(w, "route:        VirtualService %s", r.VirtualService)
	if r.File != "" {
		fmt.Fprintf(w, " (%s:%d)", r.File, r.Line)
	}
	fmt.Fprintf(w, ", %s", r.Kind)
	if r.Host != "" {
		fmt.Fprintf(w, " host %s", r.Host)
	}
	fmt.Fprintf(w, " at %s\n", r.Gateway)
	for _, t := range r.Tried {
		verdict := "no"
		if t.Matched {
			verdict = "matched"
		}
		name := ""
		if t.Name != "" {
			name = fmt.Sprintf(" %q", t.Name)
		}
		fmt.Fprintf(w, "  %s[%d]%s: %s — %s\n", r.Kind, t.Rule, name, verdict, t.Why)
	}
	if len(r.Tried) == 0 && r.Rule >= 0 {
		fmt.Fprintf(w, "  %s[%d]: matched\n", r.Kind, r.Rule)
	}
	if r.Action != "" {
		fmt.Fprintf(w, "  action:     %s\n", r.Action)
	}
	for _, d := range r.Destinations {
		fmt.Fprintf(w, "  destination: %s (weight %d, %.1f%%)\n", d.Cluster, d.Weight, d.Share)
	}
	for _, s := range r.Settings {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

// applyRoute rewrites the report for a request a VirtualService took: the outcome, cluster,
// service, DestinationRule and endpoints become those of the rule's (first) destination.
func applyRoute(rep *Report, snap *registry.Snapshot, req Request, m registry.Match, rt *Route, dests []route.Destination) {
	rep.Route = rt
	base := rep.Reason
	if m.Outcome != registry.Matched {
		base = fmt.Sprintf("no ServiceEntry matches, but VirtualService %s takes host %s", rt.VirtualService, rt.Host)
	}
	rep.Policy, rep.Endpoints, rep.Cluster = nil, []Endpoint{}, ""
	if len(dests) == 0 {
		rep.Outcome = "no-route"
		if rt.Rule >= 0 {
			rep.Outcome = "answered"
		}
		rep.Reason = base + "; " + rt.Action
		return
	}
	d := dests[0]
	rep.Cluster = d.Cluster
	via := fmt.Sprintf("; VirtualService %s %s[%d] sends it to %s", rt.VirtualService, rt.Kind, rt.Rule, d.Cluster)
	if len(dests) > 1 {
		via += fmt.Sprintf(" (the first of %d weighted destinations, shown below)", len(dests))
	}
	svc := snap.LookupHost(d.Host, d.Port, req.Namespace)
	if svc == nil {
		rep.Outcome, rep.Service = "no-cluster", nil
		rep.Reason = base + via + fmt.Sprintf(", but no ServiceEntry visible to namespace %q declares %s on port %d: Envoy answers 503 (cluster not found)", req.Namespace, d.Host, d.Port)
		return
	}
	port := svc.Port(d.Port)
	rep.Outcome, rep.Service = "matched", describe(svc, port)
	idx := req.Policies
	if idx == nil {
		idx = policy.Build(snap.Documents, req.RootNamespace)
	}
	rep.Policy = describePolicy(idx, svc, port, req)
	sp := *port
	if d.Subset != "" {
		a, ok := idx.For(svc, port.Number, policy.Proxy{Namespace: req.Namespace, Labels: req.Labels})
		var sub *policy.Subset
		if ok {
			sub = a.Subset(d.Subset)
		}
		if sub == nil {
			rep.Outcome = "no-subset"
			rep.Reason = base + via + fmt.Sprintf(", but no DestinationRule for %s defines subset %q: Envoy answers 503 (NR, no cluster for the subset)", d.Host, d.Subset)
			return
		}
		sp.Endpoints = nil
		for _, ep := range port.Endpoints {
			if labelsMatch(sub.Labels, ep.Labels) {
				sp.Endpoints = append(sp.Endpoints, ep)
			}
		}
		via += fmt.Sprintf(", subset %s (%s) of %d endpoints", d.Subset, policy.LabelString(sub.Labels), len(port.Endpoints))
	}
	rep.Reason = base + via
	rep.Endpoints = endpoints(svc, &sp, req)
}

// labelsMatch reports whether every selector label is on the endpoint.
func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
