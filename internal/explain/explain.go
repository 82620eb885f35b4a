// Package explain answers "where would this request go, and why" from a registry snapshot, the
// same decision the proxy makes, in words and in JSON.
package explain

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// Request is a destination as the sidecar of a workload sees it.
type Request struct {
	Namespace string
	Host      string
	IP        netip.Addr
	Port      uint32
	// Protocol is the traffic kind; TrafficAny lets the declared port protocol decide, as for
	// captured traffic, unless Connect is set.
	Protocol registry.Traffic
	// Connect models a CONNECT tunnel through the forward proxy: the authority is matched against
	// every port protocol, as the proxy does.
	Connect  bool
	AllowAny bool
	Locality string
	Network  string
	// Labels are the proxy's workload labels, which a DestinationRule's workloadSelector matches.
	Labels map[string]string
	// RootNamespace is the mesh root namespace ("" means istio-system); Policies, when set, is the
	// snapshot's DestinationRule index, else one is built from the snapshot's documents.
	RootNamespace string
	Policies      *policy.Index
	// Gateway, when set, explains the request as the gateway "ns/name" would route it rather
	// than as a sidecar; HTTP is what http route matching reads beyond host and port.
	Gateway string
	HTTP    HTTPRequest
	// Import, when set, narrows the VirtualServices and services routing sees, as a Sidecar's
	// egress hosts do (see route.Proxy.Import).
	Import func(namespace, host string) bool
}

// Destination echoes the request in the report.
type Destination struct {
	Host     string `json:"host,omitempty"`
	IP       string `json:"ip,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol"`
}

// Service describes the matched service.
type Service struct {
	Host       string   `json:"host"`
	Namespace  string   `json:"namespace"`
	Entry      string   `json:"serviceEntry"`
	File       string   `json:"file,omitempty"`
	Line       int      `json:"line,omitempty"`
	Location   string   `json:"location"`
	Resolution string   `json:"resolution"`
	ExportTo   []string `json:"exportTo"`
	Port       Port     `json:"port"`
	Addresses  []string `json:"addresses,omitempty"`
}

// Port is the matched service port.
type Port struct {
	Number   uint32 `json:"number"`
	Name     string `json:"name"`
	Protocol string `json:"protocol,omitempty"`
}

// Endpoint is one candidate in the order the proxy prefers it.
type Endpoint struct {
	Address  string  `json:"address"`
	Port     uint32  `json:"port,omitempty"`
	Weight   uint32  `json:"weight"`
	Priority int     `json:"priority"`
	Share    float64 `json:"share"`
	Locality string  `json:"locality,omitempty"`
	Network  string  `json:"network,omitempty"`
	Reason   string  `json:"reason"`
}

// Report is the answer.
type Report struct {
	Namespace   string      `json:"namespace"`
	Destination Destination `json:"destination"`
	// Outcome is "matched", "passthrough" or "blackhole".
	Outcome   string   `json:"outcome"`
	Cluster   string   `json:"cluster"`
	MatchedBy string   `json:"matchedBy,omitempty"`
	Reason    string   `json:"reason"`
	Service   *Service `json:"service,omitempty"`
	// Policy is the DestinationRule that applies, absent when none does (and no auto mTLS).
	Policy *Policy `json:"destinationRule,omitempty"`
	// Route is the VirtualService rule that took the request, absent when none binds it.
	Route *Route `json:"route,omitempty"`
	// Sidecar is the Sidecar scoping of the proxy (scope.go).
	Sidecar   *Sidecar   `json:"sidecar,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
	// Gateway is the Gateway server that took the request, for explain --gateway (gateway.go).
	Gateway *GatewayServer `json:"gatewayServer,omitempty"`
}

// Refused reports whether the proxy would refuse the request: nothing matched under
// REGISTRY_ONLY, a VirtualService bound the host but no rule matched (404), its destination
// has no cluster or subset (503), or at a gateway no server takes the host.
func (r *Report) Refused() bool {
	if r.Gateway != nil && !r.Gateway.Accepted {
		return true
	}
	switch r.Outcome {
	case "blackhole", "no-route", "no-cluster", "no-subset":
		return true
	}
	return false
}

// Explain decides where the request goes in snap and says why.
func Explain(snap *registry.Snapshot, req Request) *Report {
	q := registry.Query{Namespace: req.Namespace, IP: req.IP, Host: req.Host, Port: req.Port, Protocol: req.Protocol}
	protocol := "connect"
	if req.Connect {
		q.Protocol = registry.TrafficAny
	} else {
		if q.Protocol == registry.TrafficAny {
			q.Protocol = trafficFor(snap, q)
		}
		protocol = q.Protocol.String()
	}
	sc := scopeFor(snap, req)
	q.Scope = sc
	if req.Import == nil {
		// VirtualServices are narrowed by the same Sidecar as the services.
		req.Import = sc.ImportFunc()
	}
	m := snap.Match(q, req.AllowAny)
	rep := &Report{
		Namespace:   req.Namespace,
		Destination: Destination{Host: req.Host, Port: req.Port, Protocol: protocol},
		Cluster:     m.Cluster,
		Endpoints:   []Endpoint{},
	}
	if req.IP.IsValid() {
		rep.Destination.IP = req.IP.String()
	}
	rep.Sidecar = describeScope(snap, sc, q, m)
	switch m.Outcome {
	case registry.Matched:
		rep.Outcome = "matched"
		rep.MatchedBy = m.By.String()
		rep.Service = describe(m.Service, m.Port)
		rep.Reason = matchReason(q, m, req.Connect)
		rep.Endpoints = endpoints(m.Service, m.Port, req)
		idx := req.Policies
		if idx == nil {
			idx = policy.Build(snap.Documents, req.RootNamespace)
		}
		rep.Policy = describePolicy(idx, m.Service, m.Port, req)
		if m.By == registry.ByEgressProxy {
			rep.Reason = egressProxyReason(sc, m)
		}
	case registry.Passthrough:
		rep.Outcome = "passthrough"
		rep.Reason = rep.Sidecar.noMatch(snap, q) + "; the outbound policy ALLOW_ANY passes it through to the original destination"
	default:
		rep.Outcome = "blackhole"
		rep.Reason = rep.Sidecar.noMatch(snap, q) + "; the outbound policy REGISTRY_ONLY refuses it"
	}
	if !req.Connect {
		if rt, dests := routeFor(snap, req, q.Protocol); rt != nil {
			applyRoute(rep, snap, req, m, rt, dests)
		}
	}
	return rep
}

// trafficFor picks the traffic kind the declared port implies when the caller did not say.
func trafficFor(snap *registry.Snapshot, q registry.Query) registry.Traffic {
	if q.Host == "" {
		return registry.TrafficTCP
	}
	m := snap.Match(q, false)
	if m.Outcome != registry.Matched {
		return registry.TrafficHTTP
	}
	switch m.Port.Family {
	case registry.FamilyTLS:
		return registry.TrafficTLS
	case registry.FamilyHTTP, registry.FamilyAuto:
		return registry.TrafficHTTP
	}
	return registry.TrafficTCP
}

func describe(svc *registry.Service, p *registry.Port) *Service {
	out := &Service{
		Host:       svc.Host,
		Namespace:  svc.Namespace,
		Entry:      svc.Entry,
		Location:   svc.Location(),
		Resolution: svc.Resolution.String(),
		ExportTo:   svc.ExportTo(),
		Port:       Port{Number: p.Number, Name: p.Name, Protocol: p.Protocol},
	}
	if out.ExportTo == nil {
		out.ExportTo = []string{}
	}
	if svc.Source != nil {
		out.File, out.Line = svc.Source.File, svc.Source.Line
	}
	for _, a := range svc.Addresses {
		if a.IsSingleIP() {
			out.Addresses = append(out.Addresses, a.Addr().String())
		} else {
			out.Addresses = append(out.Addresses, a.String())
		}
	}
	return out
}

func matchReason(q registry.Query, m registry.Match, connect bool) string {
	svc := m.Service
	kind := "exact host"
	if svc.Wildcard {
		kind = "wildcard host"
	}
	owner := fmt.Sprintf("ServiceEntry %s/%s", svc.Namespace, svc.Entry)
	named := "Host"
	if connect {
		named = "CONNECT authority"
	}
	// The address that matched: the original destination, or else an IP written as the name.
	dst := q.IP
	literal, err := netip.ParseAddr(registry.NormalizeHost(q.Host))
	if !dst.IsValid() && err == nil {
		dst = literal
	}
	switch m.By {
	case registry.ByHost:
		if err == nil {
			// The registry finds a VIP written as the Host; no host name matched.
			return fmt.Sprintf("%s %q is an address of %s (host %s), which names its service on port %d (%s); no host name matched",
				named, q.Host, owner, svc.Host, m.Port.Number, m.Port.Family)
		}
		return fmt.Sprintf("%s %q matched the %s %s of %s on port %d (%s)", named, q.Host, kind, svc.Host, owner, m.Port.Number, m.Port.Family)
	case registry.BySNI:
		return fmt.Sprintf("SNI %q matched the %s %s of %s on TLS port %d", q.Host, kind, svc.Host, owner, m.Port.Number)
	case registry.ByIP:
		return fmt.Sprintf("destination %s matched the address of %s (host %s) on port %d%s", dst, owner, svc.Host, m.Port.Number, notByName(q, dst))
	case registry.ByCIDR:
		return fmt.Sprintf("destination %s fell in an address range of %s (host %s) on port %d (longest prefix)%s", dst, owner, svc.Host, m.Port.Number, notByName(q, dst))
	case registry.ByPort:
		return fmt.Sprintf("%s declares port %d without addresses, so it takes that port for every destination IP (oldest such entry wins)", owner, m.Port.Number)
	}
	return ""
}

// notByName says, when the request also carried a host name, that the address decided and not it.
func notByName(q registry.Query, dst netip.Addr) string {
	if q.Host == "" || registry.NormalizeHost(q.Host) == dst.String() {
		return ""
	}
	return fmt.Sprintf("; the address decided, not the name %q", q.Host)
}

// noMatchReason says why nothing matched, naming a declaration that exportTo hides if there is one.
func noMatchReason(snap *registry.Snapshot, q registry.Query) string {
	what := fmt.Sprintf("port %d", q.Port)
	if q.Host != "" {
		what = fmt.Sprintf("host %q on port %d", q.Host, q.Port)
	} else if q.IP.IsValid() {
		what = netip.AddrPortFrom(q.IP, uint16(q.Port)).String()
	}
	reason := fmt.Sprintf("no ServiceEntry visible to namespace %q matches %s as %s traffic", q.Namespace, what, q.Protocol)
	host := registry.NormalizeHost(q.Host)
	for _, svc := range snap.Services {
		p := svc.Port(q.Port)
		if host == "" || p == nil || !registry.HostMatches(svc.Host, host) {
			continue
		}
		owner := fmt.Sprintf("ServiceEntry %s/%s", svc.Namespace, svc.Entry)
		if !svc.VisibleTo(q.Namespace) {
			to := strings.Join(svc.ExportTo(), ", ")
			if to == "" {
				to = "~ (nobody)"
			}
			reason += fmt.Sprintf(" — %s declares %s but exports it only to %s", owner, svc.Host, to)
			break
		}
		if len(svc.Addresses) > 0 {
			reason += fmt.Sprintf(" — %s declares %s on port %d (%s) with addresses %s, which a sidecar matches by destination IP; pass --ip, or --protocol connect for a tunnel through the forward proxy",
				owner, svc.Host, q.Port, p.Family, describe(svc, p).Addresses)
		} else {
			reason += fmt.Sprintf(" — %s declares %s on port %d as %s, not %s", owner, svc.Host, q.Port, p.Family, q.Protocol)
		}
		break
	}
	return reason
}

func endpoints(svc *registry.Service, p *registry.Port, req Request) []Endpoint {
	switch svc.Resolution {
	case registry.ResolutionNone:
		ep := Endpoint{Weight: 1, Share: 100, Reason: "resolution NONE: the connection goes to the address the application dialled"}
		switch {
		case req.IP.IsValid():
			ep.Address, ep.Port = req.IP.String(), req.Port
		case req.Host != "":
			ep.Address, ep.Port = req.Host, req.Port
			ep.Reason = "resolution NONE with no original destination (forward proxy): the requested host, resolved by the ambient DNS"
		}
		return []Endpoint{ep}
	case registry.ResolutionDynamicDNS:
		// The name to resolve is the one the request carries, resolved when the connection is made.
		port := req.Port
		if p.TargetPort != 0 {
			port = p.TargetPort
		}
		return []Endpoint{{Address: req.Host, Port: port, Weight: 1, Share: 100,
			Reason: "resolution DYNAMIC_DNS: the requested host, resolved by DNS when the connection is made"}}
	}
	targets := make([]balance.Target, len(p.Endpoints))
	for i, ep := range p.Endpoints {
		targets[i] = balance.Target{Key: ep.Dial(), Weight: ep.Weight, Locality: ep.Locality, Network: ep.Network}
	}
	picker := balance.NewPicker(targets, balance.ParseLocality(req.Locality), req.Network, nil)
	out := make([]Endpoint, 0, len(targets))
	for _, r := range picker.Explain() {
		ep := p.Endpoints[r.Index]
		reason := r.Reason
		switch {
		case ep.Unix:
			reason += "; unix socket"
		case !ep.IP.IsValid():
			reason += "; name resolved by DNS when a connection needs it"
		}
		if svc.Resolution == registry.ResolutionDNSRoundRobin {
			reason += "; DNS_ROUND_ROBIN: one address of the name per new connection"
		}
		out = append(out, Endpoint{
			Address: ep.Address, Port: ep.Port, Weight: ep.Weight, Priority: r.Priority,
			Share: r.Share, Locality: ep.Locality, Network: ep.Network, Reason: reason,
		})
	}
	return out
}

// WriteText prints the report for a person.
func (r *Report) WriteText(w io.Writer) {
	dest := r.Destination.Host
	if r.Destination.IP != "" {
		if dest != "" {
			dest += " "
		}
		dest += "ip " + r.Destination.IP
	}
	fmt.Fprintf(w, "destination:  %s port %d (%s) from namespace %s\n", dest, r.Destination.Port, r.Destination.Protocol, r.Namespace)
	if r.Gateway != nil {
		r.Gateway.WriteText(w)
	}
	fmt.Fprintf(w, "outcome:      %s\n", r.Outcome)
	fmt.Fprintf(w, "cluster:      %s\n", r.Cluster)
	fmt.Fprintf(w, "why:          %s\n", r.Reason)
	if r.Route != nil {
		r.Route.writeText(w)
	}
	if s := r.Service; s != nil {
		fmt.Fprintf(w, "service:      %s (ServiceEntry %s/%s", s.Host, s.Namespace, s.Entry)
		if s.File != "" {
			fmt.Fprintf(w, ", %s:%d", s.File, s.Line)
		}
		fmt.Fprintln(w, ")")
		fmt.Fprintf(w, "port:         %d %s %s\n", s.Port.Number, s.Port.Name, s.Port.Protocol)
		fmt.Fprintf(w, "location:     %s\n", s.Location)
		fmt.Fprintf(w, "resolution:   %s\n", s.Resolution)
		fmt.Fprintf(w, "exportTo:     %s\n", strings.Join(s.ExportTo, ", "))
	}
	if r.Policy != nil {
		r.Policy.writeText(w)
	}
	if r.Sidecar != nil {
		r.Sidecar.writeText(w)
	}
	if len(r.Endpoints) == 0 {
		return
	}
	fmt.Fprintln(w, "endpoints, in the order the proxy prefers them:")
	for i, ep := range r.Endpoints {
		addr := ep.Address
		if ep.Port != 0 {
			addr += ":" + strconv.FormatUint(uint64(ep.Port), 10)
		}
		fmt.Fprintf(w, "  %d. %-28s weight %d, priority %d, %.1f%% of its priority — %s\n", i+1, addr, ep.Weight, ep.Priority, ep.Share, ep.Reason)
	}
}
